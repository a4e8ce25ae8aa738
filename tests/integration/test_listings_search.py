"""Search: every filter, sort and cursor, on PostgreSQL and on SQLite, and its RPC surface."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.listings import store
from services.listings.domain import Lot, LotForm, LotStatus, MineSite
from services.listings.service import ListingsService
from shared.caller import Role
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.migrations import upgrade
from shared.values import Standard
from tests.helpers import lot_input, rpc_as

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def session(request: Any, database_urls: dict[str, str], tmp_path: Any) -> Iterator[Session]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'listings.db'}"
        upgrade("listings", url)
    else:
        url = database_urls["listings"]
    engine = create_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def add_lots(session: Session) -> tuple[str, dict[str, LotRow]]:
    """Nine lots in a region of their own, so that other tests' lots never match."""
    region = f"Region {uuid.uuid4().hex[:8]}"
    specs = [
        # key, producer, name, standard, form, fineness, gross g, available g, mercury,
        # country, status, minutes after T0, site
        ("a", "p1", "Cooperativa Aurífera Río Verde", "FAIRMINED", "DORE", 9150, 1000, 915,
         True, "CO", "PUBLISHED", 0, "Mina La Esperanza"),
        ("b", "p1", "Cooperativa Aurífera Río Verde", "FAIRMINED_ECOLOGICAL", "GRAIN", 9990,
         500, 200, True, "CO", "PARTIALLY_RESERVED", 1, "Mina El Limón"),
        ("c", "p2", "Asociación Sol Andino", "CRAFT", "NUGGET", 8805, 2400, 2113, False,
         "PE", "PUBLISHED", 2, "Socavón Santa Rosa"),
        ("d", "p2", "Asociación Sol Andino", "FAIRMINED", "CAST_BAR", 9999, 100, 0, True,
         "PE", "SOLD_OUT", 3, "Socavón Santa Rosa"),
        ("e", "p3", "Oro Limpio del Sur", "CRAFT", "DORE", 9020, 800, 721.6, False, "BO",
         "PUBLISHED", 4, "Veta Illimani"),
        ("f", "p3", "Oro Limpio del Sur", "FAIRMINED", "DORE", 9500, 300, 285, True, "BO",
         "SUSPENDED", 5, "Veta Illimani"),
        ("g", "p3", "Oro Limpio del Sur", "FAIRMINED", "DORE", 9500, 300, 285, True, "BO",
         "DRAFT", 6, "Veta Illimani"),
        ("h", "p1", "Cooperativa Aurífera Río Verde", "FAIRMINED", "GRAIN", 9150, 2000,
         1830, True, "CO", "PUBLISHED", 6, "Mina La Esperanza"),  # same instant as g
        ("i", "p2", "Asociación Sol Andino", "CRAFT", "GRAIN", 8805, 10, 8.805, False, "PE",
         "PUBLISHED", 7, "Socavón 100% Norte"),
    ]
    rows = {}
    suffix = uuid.uuid4().hex[:6]
    for (key, producer, name, standard, form, fineness, gross, available, mercury, country,
         status, minutes, site) in specs:
        lot = Lot(id=f"{key}-{suffix}", producer_id=f"{producer}-{suffix}",
                  standard=Standard(standard), form=LotForm(form), gross_mg=gross * 1000,
                  fineness_tenths=fineness,
                  mine_site=MineSite(name=site, region=region, country=country),
                  mercury_free=mercury, assay_reference="A", status=LotStatus(status),
                  available_mg=round(available * 1000))
        row = store.LotRow.from_domain(lot, T0 + timedelta(minutes=minutes), name)
        session.add(row)
        rows[key] = row
    session.commit()
    return region, rows


LotRow = store.LotRow


def keys(rows: list[LotRow]) -> list[str]:
    return [row.id.split("-")[0] for row in rows]


def test_every_filter_narrows_the_search(session: Session) -> None:
    region, _ = add_lots(session)

    def find(**criteria: Any) -> list[str]:
        query = store.ListingQuery(region=region, **criteria)
        return keys(store.search(session, query, first=50))

    assert find() == ["i", "h", "e", "c", "b", "a"]  # orderable only, newest first
    assert find(standards=["FAIRMINED", "FAIRMINED_ECOLOGICAL"]) == ["h", "b", "a"]
    suffix = _suffix(session, region)
    assert find(producer_ids=[f"p2-{suffix}"]) == ["i", "c"]
    assert find(countries=["BO"]) == ["e"]
    assert find(forms=["GRAIN"]) == ["i", "h", "b"]
    assert find(mercury_free=False) == ["i", "e", "c"]
    assert find(min_fineness_tenths=9150) == ["h", "b", "a"]
    assert find(max_fineness_tenths=9020) == ["i", "e", "c"]
    assert find(min_fineness_tenths=9000, max_fineness_tenths=9150) == ["h", "e", "a"]
    assert find(min_available_mg=915_000) == ["h", "c", "a"]
    assert find(statuses=["SOLD_OUT", "SUSPENDED", "DRAFT"]) == ["g", "f", "d"]
    assert find(text="rio verde") == ["h", "b", "a"]
    assert find(text="RÍO limón") == ["b"]
    assert find(text="santa") == ["c"]
    assert find(text="100%") == ["i"]          # a LIKE wildcard is matched literally
    assert find(text="10_") == []
    assert find(text="andino", forms=["NUGGET"]) == ["c"]


def _suffix(session: Session, region: str) -> str:
    row = session.query(LotRow).filter(LotRow.mine_site_region == region).first()
    assert row is not None
    return row.id.split("-", 1)[1]


@pytest.mark.parametrize(("sort", "expected"), [
    (store.Sort.NEWEST, ["i", "h", "e", "c", "b", "a"]),
    (store.Sort.FINENESS, ["b", "h", "a", "e", "i", "c"]),
    (store.Sort.AVAILABLE_WEIGHT, ["c", "h", "a", "e", "b", "i"]),
])
def test_each_sort_pages_through_every_lot_once_with_its_cursor(
        session: Session, sort: store.Sort, expected: list[str]) -> None:
    region, _ = add_lots(session)
    query = store.ListingQuery(region=region)
    seen: list[str] = []
    after = None
    while True:
        page = store.search(session, query, sort=sort, first=3, after=after)
        seen += keys(page[:2])
        if len(page) <= 2:
            break
        after = store.decode_cursor(sort, store.encode_cursor(sort, page[1]))
    assert seen == expected


def test_a_cursor_is_refused_by_another_sort_or_when_forged(session: Session) -> None:
    _, rows = add_lots(session)
    cursor = store.encode_cursor(store.Sort.NEWEST, rows["a"])
    with pytest.raises(InvalidInput) as refused:
        store.decode_cursor(store.Sort.FINENESS, cursor)
    assert refused.value.field == "after"
    for forged in ("not-a-cursor", "W10", "WyJORVdFU1QiLCAiYSIsICJiIl0"):
        with pytest.raises(InvalidInput):
            store.decode_cursor(store.Sort.NEWEST, forged)


# --- the RPC surface: drafts, privacy, arguments --------------------------------------------

@pytest.fixture
def listings(container_factory: Any, veta_config: dict[str, Any]) -> Any:
    container = container_factory(ListingsService, veta_config)
    container.start()
    return container


def certified(config: dict[str, Any], listings: Any) -> str:
    from nameko.standalone.events import event_dispatcher
    from nameko.testing.services import entrypoint_waiter

    from services.certification.events import CertificationGranted

    producer_id = str(uuid.uuid4())
    event = CertificationGranted(
        certification_id=str(uuid.uuid4()), producer_id=producer_id, standard=Standard.FAIRMINED,
        certificate_number="FM-1", valid_from=date.today() - timedelta(days=1),
        valid_until=date.today() + timedelta(days=90), scope=["Mina La Esperanza"])
    with entrypoint_waiter(listings, "on_certification_granted"):
        event_dispatcher(config)(event.source, event.type, event.envelope())
    return producer_id


def test_a_draft_is_seen_only_by_its_producer_until_published(
        listings: Any, veta_config: dict[str, Any]) -> None:
    producer = certified(veta_config, listings)
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        draft = rpc.listings.create_listing_draft(lot_input(
            producer, assay_lab="SGS Lima", extraction_from="2026-01-01",
            extraction_until="2026-02-28", export_permit="EXP-CO-77",
            price_basis_permille=-35))
        assert (draft["status"], draft["price_basis_permille"]) == ("DRAFT", -35)
        mine = rpc.listings.search_listings({"producer_id": producer, "status": ["DRAFT"]})
        assert [i["node"]["id"] for i in mine["items"]] == [draft["id"]]
        edited = rpc.listings.update_listing({"listing_id": draft["id"],
                                              "gross_weight": "2000.000"})
        assert edited["fine_weight"] == "1830.000"
    with rpc_as(veta_config, Role.BUYER, "b-1") as rpc:
        assert rpc.listings.get_listings([draft["id"]]) == []
        with pytest.raises(Forbidden) as refused:
            rpc.listings.search_listings({"producer_id": producer, "status": ["DRAFT"]})
        assert refused.value.field == "status"
    with rpc_as(veta_config, Role.PRODUCER, "someone-else") as rpc, pytest.raises(NotFound):
        rpc.listings.publish_listing_draft({"listing_id": draft["id"]})
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        published = rpc.listings.publish_listing_draft({"listing_id": draft["id"]})
        assert published["status"] == "PUBLISHED"
        outside = rpc.listings.create_listing_draft(lot_input(
            producer, mine_site={"name": "Mina Fuera", "region": "Antioquia",
                                 "country": "CO"}))
        with pytest.raises(Conflict) as out_of_scope:
            rpc.listings.publish_listing_draft({"listing_id": outside["id"]})
        assert out_of_scope.value.field == "mine_site.name"
        withdrawn = rpc.listings.withdraw_listing({"listing_id": draft["id"],
                                                   "reason": "sold elsewhere"})
        assert withdrawn["status"] == "WITHDRAWN"
    with rpc_as(veta_config, Role.BUYER, "b-1") as rpc:
        [seen] = rpc.listings.get_listings([draft["id"]])
        assert (seen["status"], seen["assay_lab"], seen["export_permit"]) == (
            "WITHDRAWN", "SGS Lima", "EXP-CO-77")
        with pytest.raises(InvalidInput) as bad_sort:
            rpc.listings.search_listings({}, 5, None, "CHEAPEST")
        assert bad_sort.value.field == "sort"
        page = rpc.listings.search_listings({"producer_id": producer}, 1, None, "FINENESS")
        with pytest.raises(InvalidInput):
            rpc.listings.search_listings({}, 1, page["items"][0]["cursor"]
                                         if page["items"] else "x", "NEWEST")


def test_fairmined_lots_below_95_percent_of_lbma_are_refused_by_field(
        listings: Any, veta_config: dict[str, Any]) -> None:
    producer = certified(veta_config, listings)
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc, \
            pytest.raises(InvalidInput) as refused:
        rpc.listings.publish_listing(lot_input(producer, price_basis_permille=-60))
    assert refused.value.field == "price_basis_permille"
