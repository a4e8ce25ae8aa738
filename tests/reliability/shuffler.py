"""Takes over the delivery of every event: three copies to each consumer, in shuffled order.

Each service queue bound to a `<service>.events` exchange is unbound, and one queue of our
own is bound there instead ('#'). Every event that arrives on it is sent three times straight
to each queue it was meant for, picked at random among everything still outstanding, after a
small random delay: consumers see duplicates and, within a burst, events out of order.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from contextlib import suppress
from typing import Any

import eventlet
from kombu import Connection, Consumer, Queue
from nameko.standalone.events import get_event_exchange

from shared.settings import SERVICES
from tests.reliability.harness import System

QUEUE = "reliability.shuffler"


class Shuffler:
    def __init__(self, system: System, copies: int = 3, seed: int = 4,
                 max_delay: float = 0.02) -> None:
        self.system = system
        self.copies = copies
        self.chance = random.Random(seed)
        self.max_delay = max_delay
        self.routes: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.pending: list[tuple[str, Any, dict[str, Any], str, str]] = []
        self.events: Counter[str] = Counter()
        self.deliveries = 0
        self.owed = 0
        self.stopped = False
        self.threads: list[Any] = []

    def start(self) -> None:
        """Rewire the events exchanges to our queue, then start receiving and sending."""
        vhost = self.system.vhost
        bindings = self.system.broker._call(
            "GET", f"/bindings/{vhost}").json()
        for binding in bindings:
            if binding["source"].endswith(".events") and binding["destination_type"] == "queue":
                self.routes[(binding["source"], binding["routing_key"])].append(
                    binding["destination"])
        self.receiving = Connection(self.system.amqp_uri)
        self.sending = Connection(self.system.amqp_uri)
        channel = self.receiving.channel()
        queue = Queue(QUEUE, durable=False, auto_delete=False, channel=channel)
        queue.declare()
        for service in SERVICES:
            exchange = get_event_exchange(service, self.system.config)
            exchange(channel).declare()
            channel.queue_bind(QUEUE, exchange.name, "#")
        for (exchange_name, routing_key), queues in self.routes.items():
            for name in queues:
                channel.queue_unbind(name, exchange_name, routing_key)
        self.consumer = Consumer(channel, queues=[queue], callbacks=[self._received],
                                 accept=["json"])
        self.consumer.consume()
        self.producer = self.sending.Producer()
        self.threads = [eventlet.spawn(self._receive), eventlet.spawn(self._send)]

    def _receive(self) -> None:
        while not self.stopped:
            with suppress(TimeoutError):
                self.receiving.drain_events(timeout=0.2)

    def _received(self, _body: Any, message: Any) -> None:
        info = message.delivery_info
        targets = self.routes.get((info["exchange"], info["routing_key"]), [])
        for queue in targets:
            for _ in range(self.copies):
                self.pending.append((queue, message.body, dict(message.headers or {}),
                                     message.content_type, message.content_encoding))
        self.events[info["routing_key"]] += 1
        self.owed += len(targets) * self.copies
        message.ack()

    def _send(self) -> None:
        while not self.stopped:
            if not self.pending:
                eventlet.sleep(0.01)
                continue
            # Any outstanding copy may go next: bursts of events arrive shuffled.
            index = self.chance.randrange(len(self.pending))
            self.pending[index], self.pending[-1] = self.pending[-1], self.pending[index]
            queue, body, headers, content_type, encoding = self.pending.pop()
            self.producer.publish(body, exchange="", routing_key=queue, headers=headers,
                                  content_type=content_type, content_encoding=encoding,
                                  delivery_mode=2)
            self.deliveries += 1
            eventlet.sleep(self.chance.random() * self.max_delay)

    def idle(self) -> bool:
        return not self.pending and self.system.queue_depth(QUEUE) == 0

    def stop(self) -> None:
        self.stopped = True
        for thread in self.threads:
            thread.wait()
        self.receiving.release()
        self.sending.release()

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the one each consumer would have had."""
        return self.deliveries - self.deliveries // self.copies
