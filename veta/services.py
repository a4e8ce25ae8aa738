"""The services Veta is made of, by name, as `veta run` and `veta dev` start them."""

from __future__ import annotations

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService

SERVICE_CLASSES: dict[str, type] = {
    "certification": CertificationService,
    "listings": ListingsService,
    "orders": OrdersService,
    "payouts": PayoutsService,
    "gateway": GatewayService,
}
