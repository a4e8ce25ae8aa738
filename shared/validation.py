"""Input validation at every entrypoint: pydantic types for Veta's values, errors that name fields.

`parse` turns a pydantic failure into `InvalidInput`, one problem per field, so the gateway
can show each message beside its field and nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import pycountry
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from shared.errors import InvalidInput
from shared.values import fineness_to_tenths, grams_to_mg

M = TypeVar("M", bound=BaseModel)


class Command(BaseModel):
    """Base for the inputs services accept: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _country(code: str) -> str:
    code = code.upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as CO or PE")
    return code


def _grams(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a decimal string of grams, such as \"1000.000\"")
    return grams_to_mg(value, "weight")


def _fineness(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a decimal string of per mille, such as \"915.0\"")
    return fineness_to_tenths(value, "fineness")


def _printable(text: str) -> str:
    # NUL and other control characters are never part of a name or reference; PostgreSQL
    # refuses NUL outright, so letting one through would turn bad input into a server error.
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise ValueError("must not contain control characters")
    return text


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=100),
                      AfterValidator(_printable)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64),
                       AfterValidator(_printable)]
CountryCode = Annotated[str, AfterValidator(_country)]
Milligrams = Annotated[int, BeforeValidator(_grams)]
"""Grams given as a decimal string with at most three places, held as integer milligrams."""
FinenessTenths = Annotated[int, BeforeValidator(_fineness)]
"""Fineness given in per mille with at most one decimal, held as integer tenths."""


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidInput("input must be an object", field="input")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "input"
            message = error["msg"]
            if error["type"] == "value_error":
                message = str(error["ctx"]["error"])
            problems.append({"field": field, "message": message})
        raise InvalidInput(problems[0]["message"], field=problems[0]["field"],
                           problems=problems) from None
