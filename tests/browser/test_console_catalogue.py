"""Checks of the console that need no browser: its GraphQL documents against today's schema,
the Spanish catalogue's completeness and its committed .mo, and locale formatting.
"""

from __future__ import annotations

import gettext
import io
from decimal import Decimal
from importlib import resources

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from graphql import parse, validate

from gateway.console import api
from gateway.console.i18n import Formats, decimal_input
from gateway.console.pages import buyer, certifier, cooperative, finance
from gateway.schema import schema

CONSOLE = resources.files("gateway.console")
SPANISH = CONSOLE.joinpath("translations", "es", "LC_MESSAGES")


def documents() -> dict[str, str]:
    found = {}
    for module in (buyer, certifier, cooperative, finance):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value.lstrip().startswith(
                    ("query", "mutation")):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_page_document_the_api_serves_today_is_valid_against_the_schema() -> None:
    checked = 0
    for name, document in documents().items():
        parsed = parse(document)
        roots = [selection.name.value for definition in parsed.definitions
                 for selection in definition.selection_set.selections]  # type: ignore[attr-defined]
        kind = parsed.definitions[0].operation.value  # type: ignore[attr-defined]
        # Pages built ahead of the API only run once it offers their root field.
        if not all(api.offers("Query" if kind == "query" else "Mutation", r) for r in roots):
            continue
        assert validate(schema.graphql_schema, parsed) == [], name
        checked += 1
    assert checked >= 12


def test_every_message_of_the_console_has_a_spanish_translation() -> None:
    with SPANISH.joinpath("messages.po").open("rb") as po:
        catalogue = read_po(po, locale="es")
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogue
                  if m.id and m.string and (isinstance(m.string, str) or all(m.string))}
    with CONSOLE.joinpath("babel.cfg").open() as cfg:
        from babel.messages.frontend import parse_mapping_cfg
        method_map, options_map = parse_mapping_cfg(cfg)
    with resources.as_file(CONSOLE) as directory:
        extracted = {message if isinstance(message, str) else message[0]
                     for _file, _line, message, *_ in extract_from_dir(
                         str(directory), method_map, options_map,
                         keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None})}
    assert extracted - translated == set()


def test_the_committed_mo_file_is_compiled_from_the_po_file() -> None:
    with SPANISH.joinpath("messages.po").open("rb") as po:
        catalogue = read_po(po, locale="es")
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)
    with SPANISH.joinpath("messages.mo").open("rb") as mo:
        committed = gettext.GNUTranslations(mo)
    assert committed._catalog == expected._catalog  # type: ignore[attr-defined]


def test_weights_money_and_dates_are_written_the_way_each_language_writes_them() -> None:
    english, spanish = Formats("en"), Formats("es")
    assert english.grams("1143.250") == "1,143.250 g"
    assert spanish.grams("1143.250") == "1.143,250 g"
    assert spanish.fineness("914.6") == "914,6 ‰"
    money = {"amount": "2400.83", "currency": "USD"}
    assert english.money(money) == "$2,400.83"
    assert spanish.money(money).replace("\xa0", " ") == "2.400,83 US$"
    assert spanish.date("2026-03-05") == "5 mar 2026"
    # Exact: a value with more places than a float holds survives formatting.
    assert english.grams(str(Decimal("123456789012.345"))) == "123,456,789,012.345 g"


def test_a_decimal_typed_with_either_mark_reaches_the_api_as_a_decimal_string() -> None:
    assert decimal_input("1250,000") == "1250.000"
    assert decimal_input(" 915.0 ") == "915.0"
    assert decimal_input("-75,5812") == "-75.5812"
    # Anything else goes as typed, so the API's message says what is wrong with it.
    assert decimal_input("1.250,000") == "1.250,000"
