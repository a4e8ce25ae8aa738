"""Entrypoint input validation (shared/validation.py) and errors crossing RPC (shared/errors.py)."""

import json
from typing import Any

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize
from pydantic import ValidationError

import shared.messaging  # noqa: F401  (registers Veta's errors with nameko)
from shared.errors import ALL_ERRORS, Conflict, Forbidden, InvalidInput, NotFound, VetaError
from shared.validation import (
    Command,
    CountryCode,
    FinenessTenths,
    Identifier,
    Milligrams,
    Name,
    Reference,
    parse,
)


class Site(Command):
    name: Name
    region: Name
    country: CountryCode


class PublishLot(Command):
    producer_id: Identifier
    gross_weight: Milligrams
    fineness: FinenessTenths
    mine_site: Site
    references: list[Reference] = []


def valid() -> dict:
    return {
        "producer_id": "p-1",
        "gross_weight": "1000.000",
        "fineness": "915.0",
        "mine_site": {"name": "La Llanada", "region": "Nariño", "country": "CO"},
        "references": ["ASSAY-1"],
    }


def problems_of(data: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse(PublishLot, data)
    return caught.value


def fields(error: InvalidInput) -> set[str]:
    return {p["field"] for p in error.problems}


# --- parse ----------------------------------------------------------------------------------

def test_valid_input_parses_to_exact_units() -> None:
    command = parse(PublishLot, valid())
    assert command.gross_weight == 1_000_000
    assert command.fineness == 9150
    assert command.mine_site.country == "CO"
    assert command.references == ["ASSAY-1"]


def test_parsed_commands_are_immutable() -> None:
    command = parse(PublishLot, valid())
    with pytest.raises(ValidationError):
        command.producer_id = "other"


def test_strings_are_stripped() -> None:
    data = valid() | {"producer_id": "  p-1  "}
    assert parse(PublishLot, data).producer_id == "p-1"


def test_every_field_problem_is_reported_with_its_dotted_path() -> None:
    data = {
        "gross_weight": "1.0001",
        "fineness": "1000.0",
        "mine_site": {"name": "", "region": "Nariño", "country": "XX"},
        "references": ["ok", ""],
    }
    error = problems_of(data)
    assert fields(error) == {
        "producer_id", "gross_weight", "fineness", "mine_site.name", "mine_site.country",
        "references.1",
    }
    assert len(error.problems) == 6


def test_value_errors_carry_the_rule_text_not_pydantics_prefix() -> None:
    error = problems_of(valid() | {"gross_weight": "1.0001"})
    assert error.problems == [{"field": "gross_weight",
                               "message": "weight has more than three decimals (milligrams)"}]


def test_invalid_input_message_and_field_are_the_first_problem() -> None:
    error = problems_of(valid() | {"gross_weight": "0", "fineness": "0"})
    assert error.field == error.problems[0]["field"]
    assert error.message == error.problems[0]["message"]
    assert fields(error) == {"gross_weight", "fineness"}


def test_as_dicts_lists_every_problem_with_the_code() -> None:
    error = problems_of(valid() | {"gross_weight": "0", "fineness": "0"})
    assert sorted(d["field"] for d in error.as_dicts()) == ["fineness", "gross_weight"]
    assert {d["code"] for d in error.as_dicts()} == {"BAD_USER_INPUT"}


def test_unknown_fields_are_refused() -> None:
    error = problems_of(valid() | {"price": "1"})
    assert fields(error) == {"price"}


def test_unknown_nested_fields_are_refused_with_their_path() -> None:
    data = valid()
    data["mine_site"] = data["mine_site"] | {"altitude": "3000"}
    error = problems_of(data)
    assert fields(error) == {"mine_site.altitude"}


@pytest.mark.parametrize("data", [None, [], "text", 5])
def test_input_that_is_not_an_object_is_refused(data: object) -> None:
    error = problems_of(data)
    assert error.field == "input"
    assert fields(error) == {"input"}


@pytest.mark.parametrize("value", [1000.0, 1.5, True, None, [1]])
def test_weights_must_be_strings_or_ints_not_floats_or_other_types(value: object) -> None:
    error = problems_of(valid() | {"gross_weight": value})
    assert fields(error) == {"gross_weight"}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "0", "1.0001", "abc"])
def test_weights_that_break_a_rule_are_refused(value: str) -> None:
    assert fields(problems_of(valid() | {"gross_weight": value})) == {"gross_weight"}


def test_weights_given_as_ints_are_grams() -> None:
    assert parse(PublishLot, valid() | {"gross_weight": 12}).gross_weight == 12_000
    assert parse(PublishLot, valid() | {"fineness": 999}).fineness == 9990


@pytest.mark.parametrize("value", [915.0, False, "999.95", "1000", "0"])
def test_fineness_that_breaks_a_rule_is_refused(value: object) -> None:
    assert fields(problems_of(valid() | {"fineness": value})) == {"fineness"}


# --- country codes --------------------------------------------------------------------------

def site(country: object) -> dict:
    data = valid()
    data["mine_site"] = data["mine_site"] | {"country": country}
    return data


@pytest.mark.parametrize(("given", "stored"), [("CO", "CO"), ("co", "CO"), ("Pe", "PE"),
                                               (" bo ", "BO")])
def test_country_codes_are_iso_alpha_2_normalised_to_upper_case(given: str, stored: str) -> None:
    assert parse(PublishLot, site(given)).mine_site.country == stored


@pytest.mark.parametrize("country", ["XX", "COL", "PER", "C", "", "12", 57])
def test_unknown_or_malformed_country_codes_are_refused(country: object) -> None:
    error = problems_of(site(country))
    assert fields(error) == {"mine_site.country"}


def test_country_refusal_explains_the_format() -> None:
    error = problems_of(site("XX"))
    assert "ISO 3166-1 alpha-2" in error.problems[0]["message"]


# --- errors across RPC ----------------------------------------------------------------------

def round_trip(exc: Exception) -> Exception:
    # Through JSON as well, as on the wire.
    return deserialize(json.loads(json.dumps(serialize(exc))))


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_crosses_rpc_as_itself_with_message_and_field(cls: type[VetaError]) -> None:
    back = round_trip(cls("no such lot", field="listing_id"))
    assert type(back) is cls
    assert back.message == "no such lot"
    assert back.field == "listing_id"
    assert back.code == cls.code


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_a_missing_field_stays_none_across_rpc(cls: type[VetaError]) -> None:
    back = round_trip(cls("refused"))
    assert type(back) is cls
    assert back.field is None
    assert back.message == "refused"
    assert all(d["field"] is None for d in back.as_dicts())


def test_invalid_input_problems_cross_rpc() -> None:
    problems: list[dict[str, Any]] = [
                {"field": "gross_weight", "message": "must be greater than zero"},
                {"field": "mine_site.country", "message": "must be ISO"},
                {"field": None, "message": "general"}]
    back = round_trip(InvalidInput("must be greater than zero", field="gross_weight",
                                   problems=problems))
    assert type(back) is InvalidInput
    assert back.message == "must be greater than zero"
    assert back.field == "gross_weight"
    assert back.problems == [{"field": "gross_weight", "message": "must be greater than zero"},
                             {"field": "mine_site.country", "message": "must be ISO"},
                             {"field": "", "message": "general"}]
    assert back.as_dicts()[2]["field"] is None


def test_invalid_input_from_parse_crosses_rpc_with_all_its_problems() -> None:
    error = problems_of(valid() | {"gross_weight": "0", "price": 1})
    back = round_trip(error)
    assert type(back) is InvalidInput
    assert back.problems == error.problems
    assert back.as_dicts() == error.as_dicts()


def test_errors_keep_their_codes() -> None:
    assert [c.code for c in (VetaError, InvalidInput, NotFound, Conflict, Forbidden)] == [
        "BAD_USER_INPUT", "BAD_USER_INPUT", "NOT_FOUND", "CONFLICT", "FORBIDDEN"]


def test_an_unregistered_exception_still_arrives_as_remote_error() -> None:
    # The registration is what makes the difference; a plain exception is not registered.
    back = round_trip(KeyError("x"))
    assert isinstance(back, RemoteError)
