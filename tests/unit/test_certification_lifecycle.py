"""Certificate lifecycle rules: guarded transitions, history, status at an instant, timer picks."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.certification.domain import (
    Certification,
    CertificationStatus,
    Change,
    MineSite,
    Producer,
    check_mine_sites,
    end_of,
    grant,
    site_key,
    status_at,
    update_producer,
)
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

S = CertificationStatus
FROM, UNTIL = date(2026, 1, 1), date(2026, 12, 31)
T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def cert(status: CertificationStatus = S.CERTIFIED, **kw: object) -> Certification:
    values: dict[str, object] = {"id": "c-1", "producer_id": "p-1",
                                 "standard": Standard.FAIRMINED, "certificate_number": "FM-1",
                                 "valid_from": FROM, "valid_until": UNTIL, "status": status}
    values.update(kw)
    return Certification(**values)  # type: ignore[arg-type]


def granted_at(c: Certification, at: datetime = T0) -> Change:
    return Change(certification_id=c.id, version=1, from_status=None, to_status=S.CERTIFIED,
                  at=at, actor="certifier-1", reason="granted")


def test_suspend_reinstate_withdraw_each_add_a_versioned_history_entry() -> None:
    c = cert()
    suspended = c.suspend(T0, "certifier-1", "mercury found in tailings")
    assert (c.status, c.version) == (S.SUSPENDED, 2)
    assert suspended == Change("c-1", 2, S.CERTIFIED, S.SUSPENDED, T0, "certifier-1",
                               "mercury found in tailings")
    reinstated = c.reinstate(T0 + timedelta(days=5), "certifier-2", "corrected")
    assert (reinstated.from_status, reinstated.to_status, reinstated.version) == (
        S.SUSPENDED, S.CERTIFIED, 3)
    withdrawn = c.withdraw(T0 + timedelta(days=9), "certifier-1", "fraud")
    assert (c.status, withdrawn.version, withdrawn.actor) == (S.WITHDRAWN, 4, "certifier-1")


def test_a_withdrawn_certificate_cannot_be_reinstated_suspended_or_withdrawn_again() -> None:
    c = cert(S.WITHDRAWN, version=3)
    for attempt in (lambda: c.reinstate(T0, "x", None), lambda: c.suspend(T0, "x", "r"),
                    lambda: c.withdraw(T0, "x", "r")):
        with pytest.raises(Conflict) as caught:
            attempt()
        assert "withdrawn" in caught.value.message
        assert caught.value.field == "certification_id"
    assert (c.status, c.version) == (S.WITHDRAWN, 3)


def test_only_a_suspended_certificate_can_be_reinstated() -> None:
    with pytest.raises(Conflict, match="only a suspended"):
        cert().reinstate(T0, "x", None)


def test_only_a_certified_certificate_can_be_suspended() -> None:
    with pytest.raises(Conflict, match="only a certified"):
        cert(S.SUSPENDED).suspend(T0, "x", "again")


def test_an_expired_certificate_cannot_be_reinstated() -> None:
    with pytest.raises(Conflict, match="expired"):
        cert(S.EXPIRED).reinstate(T0, "x", None)


def test_nothing_is_suspended_or_reinstated_after_its_validity_ended() -> None:
    after = end_of(UNTIL) + timedelta(seconds=1)
    with pytest.raises(Conflict, match="ended"):
        cert().suspend(after, "x", "late")
    with pytest.raises(Conflict, match="ended"):
        cert(S.SUSPENDED).reinstate(after, "x", None)


def test_a_suspended_certificate_expires_when_its_validity_ends() -> None:
    c = cert(S.SUSPENDED)
    assert c.is_due_to_expire(UNTIL + timedelta(days=1))
    assert not c.is_due_to_expire(UNTIL)
    change = c.expire(end_of(UNTIL + timedelta(days=1)), "timer")
    assert change.to_status is S.EXPIRED and c.status is S.EXPIRED
    assert not c.is_due_to_expire(UNTIL + timedelta(days=2))


def test_expiry_is_refused_while_the_certificate_is_still_valid() -> None:
    with pytest.raises(Conflict):
        cert().expire(end_of(UNTIL), "timer")


@pytest.mark.parametrize(("today", "due"), [
    (UNTIL - timedelta(days=31), False), (UNTIL - timedelta(days=30), True),
    (UNTIL, True), (UNTIL + timedelta(days=1), False)])
def test_the_expiry_warning_is_due_in_the_last_30_days(today: date, due: bool) -> None:
    assert cert().is_due_for_warning(today) is due


def test_the_expiry_warning_is_given_once_and_only_for_a_certified_certificate() -> None:
    assert not cert(expiry_warned=True).is_due_for_warning(UNTIL)
    assert not cert(S.SUSPENDED).is_due_for_warning(UNTIL)


def test_grant_refuses_a_validity_that_has_already_ended() -> None:
    with pytest.raises(InvalidInput) as caught:
        grant([], certification_id="c", producer_id="p", standard=Standard.CRAFT,
              certificate_number="C-1", valid_from=FROM, valid_until=UNTIL,
              today=UNTIL + timedelta(days=1))
    assert caught.value.field == "valid_until"


def test_grant_scope_must_name_the_producers_own_mine_sites() -> None:
    sites = {site_key("Mina La Esperanza"), site_key("Socavón Santa Rosa")}
    granted = grant([], certification_id="c", producer_id="p", standard=Standard.CRAFT,
                    certificate_number="C-1", valid_from=FROM, valid_until=UNTIL,
                    scope=("mina la esperanza",), site_names=sites, certifier="FLOCERT")
    assert granted.scope == ("mina la esperanza",) and granted.certifier == "FLOCERT"
    assert granted.covers("Mina  LA Esperanza") and not granted.covers("Socavón Santa Rosa")
    with pytest.raises(InvalidInput) as caught:
        grant([], certification_id="c", producer_id="p", standard=Standard.CRAFT,
              certificate_number="C-1", valid_from=FROM, valid_until=UNTIL,
              scope=("Socavon Santa Rosa", "Elsewhere"), site_names=sites)
    assert caught.value.field == "scope.1"


def test_an_empty_scope_covers_every_site() -> None:
    assert cert().covers("Anywhere at all")


def test_mine_site_names_are_unique_per_producer_without_case_or_accents() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_mine_sites([MineSite("Río Verde"), MineSite("Other"), MineSite("rio  verde")])
    assert caught.value.field == "mine_sites.2.name"


def test_a_site_a_live_certificate_covers_cannot_be_removed_from_the_producer() -> None:
    producer = Producer(id="p", name="Coop", country="CO", region="Antioquia",
                        mine_sites=[MineSite("A"), MineSite("B")])
    with pytest.raises(Conflict) as caught:
        update_producer(producer, [("A",)], mine_sites=[MineSite("B")])
    assert caught.value.field == "mine_sites"
    updated = update_producer(producer, [("A",)], mine_sites=[MineSite("A")], name="Coop 2")
    assert (updated.name, updated.version, [s.name for s in updated.mine_sites]) == (
        "Coop 2", 2, ["A"])
    assert producer.name == "Coop"


# --- status at an instant, rebuilt from the history -------------------------------------------

def history_of_one() -> tuple[Certification, list[Change]]:
    c = cert()
    changes = [granted_at(c),
               c.suspend(datetime(2026, 3, 1, 12, tzinfo=UTC), "x", "audit"),
               c.reinstate(datetime(2026, 4, 1, 12, tzinfo=UTC), "x", "fixed")]
    return c, changes


@pytest.mark.parametrize(("at", "expected"), [
    (datetime(2026, 1, 5, tzinfo=UTC), S.CERTIFIED),   # before the grant was recorded
    (datetime(2026, 3, 1, 11, 59, tzinfo=UTC), S.CERTIFIED),
    (datetime(2026, 3, 1, 12, tzinfo=UTC), S.SUSPENDED),
    (datetime(2026, 3, 20, tzinfo=UTC), S.SUSPENDED),
    (datetime(2026, 4, 2, tzinfo=UTC), S.CERTIFIED),
    (end_of(UNTIL + timedelta(days=1)), S.EXPIRED),    # even before the timer ran
])
def test_status_at_an_instant_follows_the_recorded_history(at: datetime,
                                                           expected: CertificationStatus) -> None:
    c, changes = history_of_one()
    assert status_at([c], changes, Standard.FAIRMINED, at) is expected


def test_status_at_is_none_for_a_future_certificate_not_yet_granted_then() -> None:
    c = cert(valid_from=date(2026, 6, 1))
    changes = [granted_at(c, datetime(2026, 5, 1, tzinfo=UTC))]
    assert status_at([c], changes, Standard.FAIRMINED, datetime(2026, 4, 1, tzinfo=UTC)) \
        is None
    assert status_at([c], changes, Standard.FAIRMINED, datetime(2026, 5, 2, tzinfo=UTC)) \
        is S.APPLICANT
    assert status_at([c], changes, Standard.FAIRMINED, end_of(date(2026, 6, 1))) \
        is S.CERTIFIED


def test_status_at_after_a_withdrawal_is_withdrawn_and_before_it_certified() -> None:
    c = cert()
    changes = [granted_at(c), c.withdraw(datetime(2026, 2, 1, tzinfo=UTC), "x", "fraud")]
    assert status_at([c], changes, Standard.FAIRMINED, end_of(date(2026, 1, 31))) \
        is S.CERTIFIED
    assert status_at([c], changes, Standard.FAIRMINED, end_of(date(2026, 2, 1))) \
        is S.WITHDRAWN


def test_a_date_stands_for_the_close_of_that_day() -> None:
    assert end_of(date(2026, 3, 1)) == datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
