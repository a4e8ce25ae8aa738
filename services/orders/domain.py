"""Order and sourcing-commitment rules: the saga's states and guarded steps, commitment drawdown.

Pure Python: no nameko, no database, no clock. Every step is explicit and guarded; a refused
one raises Conflict and changes nothing. Times and dates are passed in by the caller.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from shared.errors import Conflict, InvalidInput
from shared.values import Standard, fine_weight_mg, format_grams

# --- orders ---------------------------------------------------------------------------------


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    ON_HOLD = "ON_HOLD"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"


S = OrderStatus
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.CONFIRMED, S.REJECTED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.CANCELLED, S.ON_HOLD}),
    # Held while the producer's certificate for the order's standard is not in good standing;
    # released back to CONFIRMED, or cancelled by the buyer.
    S.ON_HOLD: frozenset({S.CONFIRMED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.SETTLED}),
    S.REJECTED: frozenset(),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
}

STANDING = frozenset({S.CONFIRMED, S.ON_HOLD, S.SHIPPED, S.DELIVERED, S.SETTLED})
"""Orders that hold gold in a lot: what a commitment counts as ordered."""

WITHOUT_RESERVATION = frozenset({S.REJECTED, S.CANCELLED})
"""Orders that must not keep a reservation: one that arrives late is given back."""


class Party(enum.StrEnum):
    """Who ended an order: the buyer cancelled it, or the producer declined it."""

    BUYER = "BUYER"
    PRODUCER = "PRODUCER"


class LbmaFixing(enum.StrEnum):
    AM = "AM"
    PM = "PM"


BASIS_POINTS_PER_PERCENT = 100
FAIRMINED_MINIMUM_BP = 95 * BASIS_POINTS_PER_PERCENT
"""Fairmined gold sells for at least 95% of the LBMA price of the day."""
HAS_MINIMUM_PRICE = frozenset({Standard.FAIRMINED, Standard.FAIRMINED_ECOLOGICAL})


def percent_to_bp(value: object) -> int:
    """Parse a percentage of the LBMA price (at most two decimals, above 0, at most 200)
    into hundredths of a percent; ValueError says what is wrong."""
    if isinstance(value, float):
        raise ValueError("must be a decimal string such as \"98.50\", not a float")
    try:
        percent = Decimal(str(value))
    except ArithmeticError:
        raise ValueError("must be a percentage such as \"98.50\"") from None
    if not percent.is_finite() or percent.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("must be a percentage with at most two decimals")
    if not Decimal(0) < percent <= Decimal(200):
        raise ValueError("must be above 0 and at most 200 percent of the LBMA price")
    return int(percent * BASIS_POINTS_PER_PERCENT)


def format_percent(bp: int) -> str:
    return str((Decimal(bp) / BASIS_POINTS_PER_PERCENT).quantize(Decimal("0.01")))


@dataclass(frozen=True)
class PriceBasis:
    """The agreed price: a share of an LBMA gold fixing on the delivery date."""

    percent_of_lbma_bp: int
    fixing: LbmaFixing = LbmaFixing.PM


def price_refusal(standard: Standard, basis: PriceBasis | None) -> str | None:
    """Why `basis` is not allowed under `standard`, or None. No basis: priced later."""
    if basis is not None and standard in HAS_MINIMUM_PRICE \
            and basis.percent_of_lbma_bp < FAIRMINED_MINIMUM_BP:
        return (f"{standard} gold sells for at least "
                f"{format_percent(FAIRMINED_MINIMUM_BP)}% of the LBMA price")
    return None


@dataclass(frozen=True)
class ReceivingAssay:
    """What the buyer's assay found on arrival; the fine weight may differ from the order."""

    gross_mg: int
    fineness_tenths: int

    @property
    def fine_mg(self) -> int:
        return fine_weight_mg(self.gross_mg, self.fineness_tenths)


@dataclass
class Order:
    id: str
    buyer_id: str
    listing_id: str
    fine_mg: int
    status: OrderStatus = OrderStatus.PENDING
    producer_id: str | None = None
    standard: Standard | None = None
    reason: str | None = None
    shipment_reference: str | None = None
    assay: ReceivingAssay | None = None
    price_basis: PriceBasis | None = None
    carrier: str | None = None
    export_permit: str | None = None
    cancelled_by: Party | None = None
    delivered_on: date | None = None

    @property
    def delivered_fine_mg(self) -> int | None:
        return self.assay.fine_mg if self.assay else None

    @property
    def gives_back_late_reservations(self) -> bool:
        """A reservation that reaches this order now must be released, not kept."""
        return self.status in WITHOUT_RESERVATION

    def _move(self, to: OrderStatus) -> OrderStatus:
        if to not in ALLOWED[self.status]:
            raise Conflict(f"an order that is {self.status} cannot become {to}", field="status")
        before, self.status = self.status, to
        return before

    def _require(self, step: str, *sources: OrderStatus) -> None:
        # The table says which moves exist; a named step also says where it may start from
        # (a hold is released to CONFIRMED, but an order on hold is not "confirmed" again).
        if self.status not in sources:
            raise Conflict(f"an order that is {self.status} cannot be {step}", field="status")

    def confirm(self, producer_id: str, standard: Standard) -> OrderStatus:
        """Listings reserved the gold."""
        self._require("confirmed", S.PENDING)
        before = self._move(S.CONFIRMED)
        self.producer_id, self.standard = producer_id, standard
        return before

    def reject(self, reason: str) -> OrderStatus:
        """Listings refused, the price broke the standard's minimum, or no answer came."""
        self._require("rejected", S.PENDING)
        before = self._move(S.REJECTED)
        self.reason = reason
        return before

    def cancel(self, reason: str) -> OrderStatus:
        """The buyer withdraws, before shipping (also while on hold)."""
        self._require("cancelled", S.PENDING, S.CONFIRMED, S.ON_HOLD)
        before = self._move(S.CANCELLED)
        self.reason, self.cancelled_by = reason, Party.BUYER
        return before

    def decline(self, reason: str) -> OrderStatus:
        """The producer refuses a confirmed order before shipping it; a reason is owed."""
        if not reason.strip():
            raise InvalidInput("say why the order is declined", field="reason")
        self._require("declined", S.CONFIRMED)
        before = self._move(S.CANCELLED)
        self.reason, self.cancelled_by = reason, Party.PRODUCER
        return before

    def hold(self, reason: str) -> OrderStatus:
        self._require("put on hold", S.CONFIRMED)
        before = self._move(S.ON_HOLD)
        self.reason = reason
        return before

    def release_hold(self) -> OrderStatus:
        self._require("released from hold", S.ON_HOLD)
        before = self._move(S.CONFIRMED)
        self.reason = None
        return before

    def ship(self, shipment_reference: str, carrier: str | None = None,
             export_permit: str | None = None) -> OrderStatus:
        self._require("shipped", S.CONFIRMED)
        before = self._move(S.SHIPPED)
        self.shipment_reference = shipment_reference
        self.carrier, self.export_permit = carrier, export_permit
        return before

    def deliver(self, assay: ReceivingAssay, delivered_on: date | None = None) -> OrderStatus:
        self._require("delivered", S.SHIPPED)
        before = self._move(S.DELIVERED)
        self.assay, self.delivered_on = assay, delivered_on
        return before

    def settle(self) -> OrderStatus:
        """The premium on the delivery was paid: nothing more happens to this order."""
        self._require("settled", S.DELIVERED)
        return self._move(S.SETTLED)


# --- placed again under one idempotency key -------------------------------------------------

# An order placed under an idempotency key has an id derived from (buyer, key): the same
# request, sent again by a client or redelivered by the broker after a crash, names the same
# order instead of a second one.
ORDER_KEYS = uuid.UUID("6f1c2d0e-8d7b-4a7e-9a51-0c2f3b7e5a10")


def order_id_for(buyer_id: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    # Ambiguous, unlike commitment_id_for: ("a", "b/c") and ("a/b", "c") name one order. It is
    # kept because an order's id is all that ties a retry to it: a new derivation would make
    # a retry sent across the deploy a second order, and one that kept the old ids for buyers
    # without a "/" would still change them for the others. same_placement refuses the other
    # buyer instead, so a collision costs that buyer its key, never another buyer's order.
    return str(uuid.uuid5(ORDER_KEYS, f"{buyer_id}/{idempotency_key}"))


def same_placement(earlier: Order, *, buyer_id: str, listing_id: str, fine_mg: int) -> Order:
    """`earlier`, whose id this request's key names, if this request is the one that placed
    it; Conflict if the key was used for another order.

    Another buyer's order is refused whatever the request asks for, and in the same words as
    another order of one's own, so the refusal tells nothing about it (not even whether the
    lot and weight were guessed right).
    """
    if (earlier.buyer_id, earlier.listing_id, earlier.fine_mg) != (buyer_id, listing_id,
                                                                    fine_mg):
        raise Conflict("this idempotency key was used for a different order",
                       field="idempotency_key")
    return earlier


# --- pending orders that get no answer ------------------------------------------------------


class PendingAction(enum.StrEnum):
    WAIT = "WAIT"
    RETRY = "RETRY"
    REJECT = "REJECT"


@dataclass(frozen=True)
class PendingPolicy:
    """How long a PENDING order waits for listings before it asks again, and gives up."""

    retry_after: timedelta
    give_up_after: timedelta

    def action(self, placed_at: datetime, last_asked_at: datetime,
               now: datetime) -> PendingAction:
        if now >= placed_at + self.give_up_after:
            return PendingAction.REJECT
        if now >= last_asked_at + self.retry_after:
            return PendingAction.RETRY
        return PendingAction.WAIT

    def rejection_reason(self) -> str:
        return (f"no answer about the lot within {int(self.give_up_after.total_seconds())} s; "
                "the order was not reserved")


# --- the producers' certificates, as orders knows them from events --------------------------


class CertificateStatus(enum.StrEnum):
    CERTIFIED = "CERTIFIED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"


@dataclass(frozen=True)
class Certificate:
    """Orders' copy of one certificate: enough to know whether to hold the producer's orders."""

    certification_id: str
    producer_id: str
    standard: Standard
    status: CertificateStatus
    changed_at: datetime
    version: int | None = None
    valid_from: date | None = None

    def is_older_than(self, version: int | None, at: datetime) -> bool:
        """Whether a change (version, at) is newer than what this copy holds."""
        if self.version is not None and version is not None:
            return version > self.version
        return at >= self.changed_at

    def changed(self, status: CertificateStatus, version: int | None, at: datetime,
                valid_from: date | None) -> Certificate | None:
        """This certificate after a change, or None if the change is stale or too late.

        Changes may arrive out of order: the certificate's version (or, without one, the
        time of the change) decides. A withdrawal is final.
        """
        if not self.is_older_than(version, at) or self.status is CertificateStatus.WITHDRAWN:
            return None
        return Certificate(self.certification_id, self.producer_id, self.standard, status,
                           changed_at=at, version=version if version is not None else
                           self.version, valid_from=valid_from or self.valid_from)

    def in_good_standing(self, today: date) -> bool:
        # Expiry is certification's to find (its timer raises certification_expired), so
        # only the start of validity is checked here: a renewal granted ahead of time does
        # not count before it starts.
        return self.status is CertificateStatus.CERTIFIED and (
            self.valid_from is None or self.valid_from <= today)


def in_good_standing(certificates: Iterable[Certificate], today: date) -> bool | None:
    """Whether a producer may deliver under a standard today; None if orders knows nothing.

    Orders holds only on evidence: with no certificate on record, it trusts the reservation
    (listings checked the certificate when the lot was published).
    """
    known = list(certificates)
    if not known:
        return None
    return any(c.in_good_standing(today) for c in known)


def hold_reason(standard: Standard, status: CertificateStatus, why: str | None) -> str:
    reason = f"the producer's {standard} certification is {status.lower()}"
    return f"{reason}: {why}" if why else reason


# --- sourcing commitments -------------------------------------------------------------------


class CommitmentStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    FULFILLED = "FULFILLED"
    LAPSED = "LAPSED"
    CANCELLED = "CANCELLED"


class Pace(enum.StrEnum):
    ON_TRACK = "ON_TRACK"
    BEHIND = "BEHIND"


MAX_PERIOD_DAYS = 5 * 366


@dataclass(frozen=True)
class Scope:
    """Which gold counts: any of the standards, optionally only some countries or producers,
    optionally priced at most `price_ceiling_bp` hundredths of a percent of LBMA."""

    standards: frozenset[Standard]
    countries: frozenset[str] = frozenset()
    producer_ids: frozenset[str] = frozenset()
    price_ceiling_bp: int | None = None

    def __post_init__(self) -> None:
        if not self.standards:
            raise InvalidInput("name at least one standard", field="standards")
        if self.price_ceiling_bp is not None and all(
                s in HAS_MINIMUM_PRICE for s in self.standards) \
                and self.price_ceiling_bp < FAIRMINED_MINIMUM_BP:
            raise InvalidInput("below the Fairmined minimum of 95% of LBMA: no gold under "
                               "these standards could ever match", field="price_ceiling")


@dataclass(frozen=True)
class OrderFacts:
    """What matching needs to know about an order, from orders' own records."""

    order_id: str
    buyer_id: str
    standard: Standard | None
    producer_id: str | None
    country: str | None
    price_bp: int | None
    placed_on: date
    ordered_mg: int
    delivered_on: date | None = None
    delivered_mg: int | None = None


@dataclass(frozen=True)
class Progress:
    committed_mg: int
    ordered_mg: int
    delivered_mg: int
    elapsed_days: int
    period_days: int

    @property
    def remaining_mg(self) -> int:
        return max(self.committed_mg - self.delivered_mg, 0)

    @property
    def percentage(self) -> Decimal:
        """Delivered over committed, in percent, to two places (half-even)."""
        exact = Decimal(self.delivered_mg * 100) / Decimal(self.committed_mg)
        return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)

    @property
    def elapsed_share(self) -> Decimal:
        return (Decimal(self.elapsed_days) / Decimal(self.period_days)).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_EVEN)

    @property
    def expected_mg(self) -> int:
        """What would have been delivered by now at an even pace over the period."""
        return self.committed_mg * self.elapsed_days // self.period_days

    @property
    def pace(self) -> Pace:
        # Compared in integers, so the boundary is exact: on track means at least the
        # elapsed share of the commitment has been delivered.
        on_track = self.delivered_mg * self.period_days >= self.committed_mg * self.elapsed_days
        return Pace.ON_TRACK if on_track else Pace.BEHIND


@dataclass
class Commitment:
    """A buyer's promise to source `fine_mg` of fine gold within [period_start, period_end]."""

    id: str
    buyer_id: str
    fine_mg: int
    period_start: date
    period_end: date
    scope: Scope
    status: CommitmentStatus = CommitmentStatus.ACTIVE
    delivered_mg: int = 0
    reason: str | None = None
    drawn: dict[str, int] = field(default_factory=dict)
    """Order id to milligrams drawn by it, so that one delivery never draws twice."""

    def __post_init__(self) -> None:
        check_terms(self.fine_mg, self.period_start, self.period_end)

    @property
    def remaining_mg(self) -> int:
        return max(self.fine_mg - self.delivered_mg, 0)

    @property
    def period_days(self) -> int:
        return (self.period_end - self.period_start).days + 1

    def covers(self, day: date) -> bool:
        return self.period_start <= day <= self.period_end

    def matches(self, order: OrderFacts) -> bool:
        """Whether an order's gold is the kind this commitment is about (ignoring dates)."""
        scope = self.scope
        if order.buyer_id != self.buyer_id or order.standard not in scope.standards:
            return False
        if scope.countries and order.country not in scope.countries:
            return False  # an order whose lot's country orders never learnt cannot match
        if scope.producer_ids and order.producer_id not in scope.producer_ids:
            return False
        return scope.price_ceiling_bp is None or (
            order.price_bp is not None and order.price_bp <= scope.price_ceiling_bp)

    def counts_as_ordered(self, order: OrderFacts) -> bool:
        return self.matches(order) and self.covers(order.placed_on)

    def can_draw(self, order: OrderFacts) -> bool:
        return (self.status is CommitmentStatus.ACTIVE and order.delivered_on is not None
                and order.order_id not in self.drawn and self.covers(order.delivered_on)
                and self.matches(order))

    def draw(self, order_id: str, fine_mg: int) -> int:
        """Take up to `fine_mg` of a delivery; returns how much this commitment took."""
        if self.status is not CommitmentStatus.ACTIVE:
            raise Conflict(f"a commitment that is {self.status} takes no more deliveries",
                           field="status")
        taken = min(fine_mg, self.remaining_mg)
        self.drawn[order_id] = taken
        self.delivered_mg += taken
        if self.remaining_mg == 0:
            self.status = CommitmentStatus.FULFILLED
        return taken

    def progress(self, ordered_mg: int, today: date) -> Progress:
        elapsed = min(max((today - self.period_start).days, 0), self.period_days)
        return Progress(committed_mg=self.fine_mg, ordered_mg=ordered_mg,
                        delivered_mg=self.delivered_mg, elapsed_days=elapsed,
                        period_days=self.period_days)

    def _require_active(self, step: str) -> None:
        if self.status is not CommitmentStatus.ACTIVE:
            raise Conflict(f"a commitment that is {self.status} cannot be {step}",
                           field="status")

    def amend(self, *, today: date, fine_mg: int | None = None,
              period_end: date | None = None, scope: Scope | None = None) -> bool:
        """Change the terms of an active commitment; True if it is now fulfilled.

        What was drawn stays drawn: new terms apply to deliveries from now on.
        """
        self._require_active("amended")
        new_fine = self.fine_mg if fine_mg is None else fine_mg
        new_end = self.period_end if period_end is None else period_end
        if new_fine < self.delivered_mg:
            raise Conflict(f"{format_grams(self.delivered_mg)} g were already delivered "
                           "against it", field="fine_weight")
        if period_end is not None and period_end < today:
            raise InvalidInput("the period cannot end in the past", field="period_end")
        check_terms(new_fine, self.period_start, new_end)
        self.fine_mg, self.period_end = new_fine, new_end
        if scope is not None:
            self.scope = scope
        if self.remaining_mg == 0:
            self.status = CommitmentStatus.FULFILLED
            return True
        return False

    def cancel(self, reason: str) -> None:
        self._require_active("cancelled")
        self.status, self.reason = CommitmentStatus.CANCELLED, reason

    def lapse(self, today: date) -> None:
        """The period ended short of the quantity."""
        self._require_active("lapsed")
        if today <= self.period_end:
            raise Conflict(f"the period runs until {self.period_end}", field="period_end")
        self.status = CommitmentStatus.LAPSED


def check_terms(fine_mg: int, period_start: date, period_end: date) -> None:
    if fine_mg <= 0:
        raise InvalidInput("must be greater than zero", field="fine_weight")
    if period_end < period_start:
        raise InvalidInput("the period cannot end before it starts", field="period_end")
    if (period_end - period_start).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput("a commitment covers at most five years", field="period_end")


def new_commitment(*, commitment_id: str, buyer_id: str, fine_mg: int, period_start: date,
                   period_end: date, scope: Scope, today: date) -> Commitment:
    if period_end < today:
        raise InvalidInput("the period cannot end in the past", field="period_end")
    return Commitment(id=commitment_id, buyer_id=buyer_id, fine_mg=fine_mg,
                      period_start=period_start, period_end=period_end, scope=scope)


# A commitment asked for under an idempotency key has an id derived from (buyer, key), so the
# same request sent again (a client's retry after a lost answer, or the broker redelivering
# the call after orders crashed between commit and acknowledgement) names the same commitment.
COMMITMENT_KEYS = uuid.UUID("31510d01-2186-443c-a9ec-5edf1aa39bf9")


def commitment_id_for(buyer_id: str, idempotency_key: str) -> str:
    # JSON keeps the pair unambiguous: ("a/b", "c") and ("a", "b/c") are different requests.
    return str(uuid.uuid5(COMMITMENT_KEYS, json.dumps([buyer_id, idempotency_key])))


def requested_terms_digest(*, fine_mg: int, period_start: date, period_end: date,
                           scope: Scope) -> str:
    """A fingerprint of the terms a commitment was asked for, kept with it so that a request
    sent again under the same key is told apart from another request reusing the key.

    The terms as asked, not as they stand: an amended commitment still answers a late retry
    of the request that created it. Lists are sets, so their order does not matter.
    """
    canonical = json.dumps({
        "fine_mg": fine_mg, "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(), "standards": sorted(scope.standards),
        "countries": sorted(scope.countries), "producer_ids": sorted(scope.producer_ids),
        "price_ceiling_bp": scope.price_ceiling_bp}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def drawing_order(commitment: Commitment) -> tuple[date, date, str]:
    """Which commitment a delivery draws first: the one that ends soonest, then the oldest."""
    return (commitment.period_end, commitment.period_start, commitment.id)


def draw_down(commitments: Iterable[Commitment], order: OrderFacts) -> list[tuple[Commitment,
                                                                                  int]]:
    """Draw a delivery down across the buyer's matching commitments; what each one took.

    Each delivered milligram counts once. A delivery larger than what the first matching
    commitment still needs *straddles* it: that commitment takes its remainder and the rest
    goes on to the next matching one (soonest period end first), and whatever no commitment
    needs is simply not drawn.
    """
    if order.delivered_mg is None or order.delivered_on is None:
        return []
    left = order.delivered_mg
    taken: list[tuple[Commitment, int]] = []
    for commitment in sorted(commitments, key=drawing_order):
        if left == 0:
            break
        if not commitment.can_draw(order):
            continue
        part = commitment.draw(order.order_id, left)
        taken.append((commitment, part))
        left -= part
    return taken
