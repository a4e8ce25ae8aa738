"""Prometheus metrics every service exposes on /metrics: latency, events, outbox, dead letters.

One registry per process (prometheus_client's default); labels carry the service name, so
the embedded default, which runs every service in one process, still tells them apart.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENTRYPOINT_SECONDS = Histogram(
    "veta_entrypoint_seconds", "Time spent in an RPC, event handler, timer or HTTP entrypoint",
    ["service", "entrypoint", "kind", "outcome"])
EVENTS_PUBLISHED = Counter(
    "veta_events_published_total", "Events the outbox relay published", ["service", "type"])
EVENTS_CONSUMED = Counter(
    "veta_events_consumed_total", "Events handled, by outcome", ["service", "type", "outcome"])
OUTBOX_BACKLOG = Gauge(
    "veta_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_SECONDS = Gauge(
    "veta_outbox_oldest_seconds", "Age of the oldest unpublished outbox row", ["service"])
DEAD_LETTERED = Counter(
    "veta_dead_lettered_total", "Messages moved to the dead-letter queue", ["service", "queue"])
