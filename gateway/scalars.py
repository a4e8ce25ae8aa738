"""Value types of the public schema: weights and money as exact strings with their unit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import graphene


class Date(graphene.Date):
    """An ISO 8601 calendar date. Services send ISO strings; they pass through unchanged."""

    @staticmethod
    def serialize(value: Any) -> str:
        if isinstance(value, str):
            return dt.date.fromisoformat(value).isoformat()
        return graphene.Date.serialize(value)


class DateTime(graphene.DateTime):
    """An ISO 8601 instant with its offset."""

    @staticmethod
    def serialize(value: Any) -> str:
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value).isoformat()
        return graphene.DateTime.serialize(value)


class Weight(graphene.ObjectType):
    """A weight in grams, exact to the milligram, as a decimal string."""

    grams = graphene.String(required=True)
    unit = graphene.String(required=True)

    @staticmethod
    def of(grams: str | None) -> dict[str, str] | None:
        return None if grams is None else {"grams": grams, "unit": "g"}


class Money(graphene.ObjectType):
    """An amount in major units as an exact decimal string, with its ISO 4217 currency."""

    amount = graphene.String(required=True)
    currency = graphene.String(required=True)
