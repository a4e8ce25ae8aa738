"""Order rules: the saga's states and the only transitions allowed between them.

Pure Python. Every transition is explicit and guarded; a refused one raises Conflict.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.errors import Conflict
from shared.values import Standard, fine_weight_mg


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"


ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED,
                                    OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.SETTLED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.SETTLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


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

    @property
    def delivered_fine_mg(self) -> int | None:
        return self.assay.fine_mg if self.assay else None

    def _move(self, to: OrderStatus) -> OrderStatus:
        if to not in ALLOWED[self.status]:
            raise Conflict(f"an order that is {self.status} cannot become {to}", field="status")
        before, self.status = self.status, to
        return before

    def confirm(self, producer_id: str, standard: Standard) -> OrderStatus:
        before = self._move(OrderStatus.CONFIRMED)
        self.producer_id, self.standard = producer_id, standard
        return before

    def reject(self, reason: str) -> OrderStatus:
        before = self._move(OrderStatus.REJECTED)
        self.reason = reason
        return before

    def ship(self, shipment_reference: str) -> OrderStatus:
        before = self._move(OrderStatus.SHIPPED)
        self.shipment_reference = shipment_reference
        return before

    def deliver(self, assay: ReceivingAssay) -> OrderStatus:
        before = self._move(OrderStatus.DELIVERED)
        self.assay = assay
        return before
