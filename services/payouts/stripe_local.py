"""A local, stateful Stripe-compatible HTTP server for tests and the offline dev mode.
It speaks Stripe's wire format (form-encoded in, JSON out) for the endpoints Veta uses."""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import fnmatch
import hashlib
import hmac
import io
import json
import operator
import queue
import re
import secrets
import socket
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import stripe
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

API_VERSION: str = stripe.api_version
Obj = dict[str, Any]
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                          "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
REPORT_COLUMNS = (
    "balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee",
    "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "automatic_payout_id", "connected_account",
)
DECLINES = {  # test payment method -> (code, decline_code, message); other pm_card_* succeed
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined", "insufficient_funds", "Your card has insufficient funds."),
}
FAULTS = {  # fail_next(error=...) -> (status, type, code, message)
    "rate_limit": (429, "invalid_request_error", "rate_limit",
                   "Too many requests hit the API too quickly. We recommend an exponential "
                   "backoff of your requests."),
    "api_error": (500, "api_error", None, "An unknown error occurred (injected by stripe_local)."),
    "balance_insufficient": (400, "invalid_request_error", "balance_insufficient",
                             "You have insufficient available funds in your Stripe account."),
}
LIST_PARAMS = "limit starting_after ending_before created"
# Stripe may remove a key 24 hours after its first use: the same request sent later is new.
IDEMPOTENCY_KEY_SECONDS = 24 * 3600
_ALNUM = string.ascii_letters + string.digits


class StripeLocalError(Exception):
    """A Stripe API error. `saved=False` marks parameter validation errors, which Stripe does
    not record under the request's Idempotency-Key (the endpoint never started executing)."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, type_: str = "invalid_request_error",
                 saved: bool = True, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code = status, type_, message, code
        self.param, self.saved, self.extra = param, saved, extra

    def body(self) -> Obj:
        err = {"type": self.type, "code": self.code, "message": self.message, "param": self.param}
        return {"error": {**err, **self.extra}}


def _bad_param(message: str, param: str, code: str = "parameter_invalid") -> StripeLocalError:
    return StripeLocalError(400, message, code=code, param=param, saved=False)


def _missing(obj_name: str, obj_id: str, param: str = "id", status: int = 404) -> StripeLocalError:
    return StripeLocalError(status, f"No such {obj_name}: '{obj_id}'", code="resource_missing",
                            param=param)


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value Stripe sends for `payload` signed at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def parse_form(pairs: Iterable[tuple[str, str]]) -> Obj:
    """Decode Stripe's bracketed form keys (`metadata[k]`, `expand[0]`, `expand[]`) to a tree."""
    root: Obj = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
            if not isinstance(node, dict):
                raise _bad_param(f"Invalid value for {key}: mixes a string and a hash", key)
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    out = {k: _listify(v) for k, v in value.items()}
    return [out[k] for k in sorted(out, key=int)] if out and all(map(str.isdigit, out)) else out


def _str(params: Obj, name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None and required:
        raise _bad_param(f"Missing required param: {name}.", name, "parameter_missing")
    if value is not None and not isinstance(value, str):
        raise _bad_param(f"Invalid string: {value!r}", name)
    return value


def _int(params: Obj, name: str, required: bool = False) -> int | None:
    """A positive integer parameter."""
    raw = _str(params, name, required)
    if raw is not None and not (raw.isdigit() and int(raw) > 0):
        raise _bad_param(f"Invalid positive integer: {raw}", name, "parameter_invalid_integer")
    return None if raw is None else int(raw)


def _currency(params: Obj) -> str:
    cur = (_str(params, "currency", required=True) or "").lower()
    if not re.fullmatch(r"[a-z]{3}", cur):
        raise _bad_param(f"Invalid currency: {cur}", "currency")
    return cur


def _metadata(params: Obj, current: Obj | None = None) -> Obj:
    """Merge `metadata[...]` into `current`; an empty value unsets a key, `metadata=` all."""
    raw = params.get("metadata", {})
    raw = {str(i): v for i, v in enumerate(raw)} if isinstance(raw, list) else raw
    if raw == "":
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _bad_param("Invalid metadata: must be a hash of strings", "metadata")
    return {k: v for k, v in {**(current or {}), **raw}.items() if v != ""}


def _created_ok(created: int, cond: Any) -> bool:
    """`created=ts` or `created[gt|gte|lt|lte]=ts`."""
    ops = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
    for op, raw in (cond if isinstance(cond, dict) else {"eq": cond}).items():
        if op not in {*ops, "eq"} or not str(raw).isdigit():
            raise _bad_param(f"Invalid created filter: {op}", "created")
        if not ops.get(op, operator.eq)(created, int(raw)):
            return False
    return True


def _major(amount: int, currency: str) -> str:
    """Minor units to the decimal major-unit string Stripe writes in reports."""
    return str(amount) if currency in ZERO_DECIMAL else f"{Decimal(amount) / 100:.2f}"


def _utc(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _strip(value: Any) -> Any:
    """Deep copy without internal (underscore-prefixed) keys."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("_")}
    return [_strip(v) for v in value] if isinstance(value, list) else value


@dataclass
class _Fault:
    pattern: str  # fnmatch glob on the request path
    method: str | None
    remaining: int
    error: str  # a FAULTS key, "network" or "delay"
    after: bool = False
    delay: float = 0.0
    release: threading.Event | None = None  # a delay that ends early when this is set


class _Ctx(NamedTuple):
    api_key: str
    account: str | None  # the Stripe-Account header
    idempotency_key: str | None
    request_id: str


class Delivery(NamedTuple):
    """One webhook delivery attempt (`StripeLocal.deliveries`); status 0 = no HTTP answer."""

    event_id: str
    url: str
    status: int
    attempt: int


class Handled(NamedTuple):
    """One API request that reached an endpoint (`StripeLocal.requests`), in order."""

    method: str
    path: str
    idempotency_key: str | None
    replayed: bool
    status: int
    query: str = ""  # the URL's query string as sent: which list, filtered how


class _Drop(Exception):
    """Close the client connection without a response."""


def _handler_class(conns: set[socket.socket], lock: threading.Lock) -> type[WSGIRequestHandler]:
    """A quiet request handler recording open connections, so `stop()` can close them."""

    class Handler(WSGIRequestHandler):
        def setup(self) -> None:
            super().setup()
            with lock:
                conns.add(self.connection)

        def finish(self) -> None:
            with lock:
                conns.discard(self.connection)
            super().finish()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    return Handler


class StripeLocal:
    """In-memory Stripe: Connect accounts, transfers, payment intents, balance, events, webhooks.

    Test helpers: `onboard_account`, `create_payout`, `set_balance`, `fail_next`,
    `delay_next`, `signed_event`, `deliver`, `balance_change_csv`, also reachable (without
    auth) under `/_local/...`; `hold_next` (in process only). Replace `clock` (unix seconds)
    to date new objects; webhook signatures always use the real time. Requests sharing an
    Idempotency-Key are answered from the saved response, as Stripe does, until the key is
    24 hours old by `clock`; then it is forgotten, as Stripe may forget it.
    """

    ROUTES = [  # method, path, handler, accepted parameters (besides expand)
        ("POST", r"/v1/accounts", "_create_account", "type country email capabilities metadata "
         "business_type business_profile default_currency controller tos_acceptance"),
        ("POST", r"/v1/account_links", "_create_account_link",
         "account refresh_url return_url type collect"),
        ("POST", r"/v1/transfers", "_create_transfer", "amount currency destination "
         "transfer_group metadata description source_transaction source_type"),
        ("GET", r"/v1/transfers", "_list_transfers", f"destination transfer_group {LIST_PARAMS}"),
        ("POST", r"/v1/transfers/(?P<id>[^/]+)", "_update_transfer", "description metadata"),
        ("POST", r"/v1/transfers/(?P<id>[^/]+)/reversals", "_create_reversal",
         "amount description metadata refund_application_fee"),
        ("GET", r"/v1/transfers/(?P<id>[^/]+)/reversals", "_list_reversals", LIST_PARAMS),
        ("POST", r"/v1/payment_intents", "_create_payment_intent", "amount currency customer "
         "description metadata transfer_group confirm payment_method payment_method_types "
         "automatic_payment_methods receipt_email return_url off_session capture_method "
         "statement_descriptor_suffix setup_future_usage"),
        ("POST", r"/v1/payment_intents/(?P<id>[^/]+)/confirm", "_confirm_payment_intent",
         "payment_method return_url off_session receipt_email"),
        ("GET", r"/v1/balance", "_get_balance", ""),
        ("GET", r"/v1/balance_transactions", "_list_balance_transactions",
         f"type source currency {LIST_PARAMS}"),
        ("GET", r"/v1/events", "_list_events", f"type types delivery_success {LIST_PARAMS}"),
        ("GET", r"/v1/(?P<coll>accounts|transfers|payment_intents|balance_transactions|events|"
         r"charges|payouts)/(?P<id>[^/]+)", "_retrieve", ""),
    ]
    COLLECTIONS = {"accounts": "account", "transfers": "transfer", "charges": "charge",
                   "payment_intents": "payment_intent", "balance_transactions":
                   "balance_transaction", "events": "event", "payouts": "payout"}

    def __init__(
        self, *, api_key: str = "sk_test_local", webhook_secret: str | None = None,
        webhook_urls: list[str] | None = None, platform_balance: int = 10**12,
        currency: str = "usd", auto_deliver_webhooks: bool = True,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(16)
        self.currency = currency.lower()
        self.auto_deliver_webhooks = auto_deliver_webhooks
        self.webhook_retry_delays: tuple[float, ...] = (0.05, 0.25, 1.0)  # then give up
        self.clock: Callable[[], int] = lambda: int(time.time())
        self.url = ""
        self.deliveries: list[Delivery] = []
        self.requests: list[Handled] = []  # every API request executed or replayed
        self._lock = threading.RLock()
        self._api_keys = {api_key}
        self._webhook_urls = list(webhook_urls or [])
        self._objects: dict[str, Obj] = {}  # every object by id
        self._ids: dict[str, list[str]] = {}  # object type -> ids, oldest first
        self._balances: dict[str | None, dict[str, int]] = {None: {self.currency: platform_balance}}
        self._payloads: dict[str, bytes] = {}  # event id -> the exact JSON body delivered
        # (api key, idempotency key) -> (request fingerprint, status, body, original request
        # id, when it was saved by `clock`)
        self._saved: dict[tuple[str, str], tuple[str, int, bytes, str, int]] = {}
        self._faults: list[_Fault] = []
        self._links: dict[str, tuple[str, str | None]] = {}  # token -> (account, return_url)
        self._seq = 0
        self._routes = [(m, re.compile(p), h, set(a.split())) for m, p, h, a in self.ROUTES]
        self._server: ThreadedWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._outbox: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from background threads; returns the base URL (`http://host:port`)."""
        handler = _handler_class(self._conns, self._conns_lock)
        server = make_server(host, port, self._wsgi, threaded=True, request_handler=handler)
        assert isinstance(server, ThreadedWSGIServer)
        server.block_on_close = False  # idle keep-alive connections must not block stop()
        self._server, self._stopping = server, threading.Event()
        self.url = f"http://{host}:{server.port}"
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="stripe-local-http", daemon=True),
            threading.Thread(target=self._delivery_loop, args=(self._stopping,),
                             name="stripe-local-webhooks", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, close open client connections, stop webhook delivery."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=10)
        self._server, self._threads = None, []

    # ------------------------------------------------------------------ test helpers
    def add_webhook_url(self, url: str) -> None:
        with self._lock:
            self._webhook_urls.append(url)

    def add_api_key(self, api_key: str) -> None:
        """Accept another secret key (with its own idempotency-key namespace)."""
        with self._lock:
            self._api_keys.add(api_key)

    def set_balance(self, amount: int, currency: str | None = None,
                    account: str | None = None) -> None:
        """Set the available balance of the platform (or of a connected `account`)."""
        with self._lock:
            self._balances.setdefault(account, {})[(currency or self.currency).lower()] = amount

    def onboard_account(self, account_id: str, *, deliver: bool = True) -> Obj:
        """Complete onboarding (charges/payouts enabled, capabilities active): `account.updated`,
        whose delivery is lost for good (never sent) with `deliver=False`."""
        with self._lock:
            acct = self._get("account", account_id)
            if not acct["details_submitted"]:
                keys = ("charges_enabled", "payouts_enabled", "details_submitted", "capabilities",
                        "requirements")
                previous = {k: copy.deepcopy(acct[k]) for k in keys}
                acct.update(charges_enabled=True, payouts_enabled=True, details_submitted=True,
                            capabilities={name: "active" for name in acct["capabilities"]},
                            requirements={"currently_due": [], "eventually_due": [],
                                          "past_due": [], "disabled_reason": None})
                self._emit("account.updated", acct, account=account_id, previous=previous,
                           deliver=deliver)
            return _strip(acct)

    def create_payout(self, account: str | None = None, amount: int | None = None,
                      currency: str | None = None, *, fail: bool = False,
                      failure_code: str = "account_closed") -> Obj:
        """Pay out (default: everything available) from a connected account, or the platform,
        and settle it at once: `payout.created`, then `payout.paid` or `payout.failed`."""
        with self._lock:
            if account is not None:
                self._get("account", account)
            cur = (currency or self.currency).lower()
            available = self._balances.setdefault(account, {}).get(cur, 0)
            amount = available if amount is None else amount
            if not 0 < amount <= available:
                raise StripeLocalError(400, "You have insufficient funds in your Stripe account "
                                       "for this payout.", code="balance_insufficient")
            payout = self._new(
                "payout", "po", amount=amount, arrival_date=self.clock(), automatic=False,
                balance_transaction=None, currency=cur, description=None, failure_code=None,
                destination="ba_" + self._token(24), failure_balance_transaction=None,
                failure_message=None, metadata={}, method="standard", source_type="card",
                statement_descriptor=None, status="pending", type="bank_account",
                _account=account)
            payout["balance_transaction"] = self._bt(-amount, cur, "payout", "payout",
                                                     payout["id"], account=account)["id"]
            self._emit("payout.created", payout, account=account)
            if fail:
                returned = self._bt(amount, cur, "payout_failure", "payout_reversal", payout["id"],
                                    account=account)
                payout.update(status="failed", failure_code=failure_code,
                              failure_balance_transaction=returned["id"],
                              failure_message="The bank account has been closed.")
            else:
                payout["status"] = "paid"
            self._emit(f"payout.{payout['status']}", payout, account=account,
                       previous={"status": "pending"})
            return _strip(payout)

    def fail_next(self, path: str, times: int = 1, error: str = "api_error", *,
                  method: str | None = None, after_execution: bool = False) -> None:
        """Fail the next `times` requests whose path matches the glob `path`.

        `error`: "rate_limit" (429), "api_error" (500), "balance_insufficient" (400), or
        "network" (the connection is closed without a response). By default the request is
        not executed, so nothing is saved under its Idempotency-Key; with
        `after_execution=True` it runs (and is saved), then its response is lost.
        """
        if error not in FAULTS and error != "network":
            raise ValueError(f"unknown fault {error!r}")
        if after_execution and error not in ("api_error", "network"):
            raise ValueError("after_execution applies to api_error and network faults only")
        with self._lock:
            self._faults.append(_Fault(path, method and method.upper(), times, error,
                                       after=after_execution))

    def delay_next(self, path: str, seconds: float, times: int = 1, *,
                   method: str | None = None, after_execution: bool = False) -> None:
        """Hold the next `times` requests matching `path` for `seconds` before handling them
        (or, with `after_execution=True`, after executing and saving them, before answering:
        the window in which a client can die with the work done and no reply read)."""
        with self._lock:
            self._faults.append(_Fault(path, method and method.upper(), times, "delay",
                                       after=after_execution, delay=seconds))

    def hold_next(self, path: str, *, method: str | None = None,
                  timeout: float = 30.0) -> threading.Event:
        """Execute and save the next request matching `path`, then keep its answer until the
        returned event is set (or `timeout` passes): the moment to make a webhook arrive
        before the client hears what Stripe did."""
        release = threading.Event()
        with self._lock:
            self._faults.append(_Fault(path, method and method.upper(), 1, "delay",
                                       after=True, delay=timeout, release=release))
        return release

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def signed_event(self, event_id: str, timestamp: int | None = None) -> tuple[bytes, str]:
        """The exact webhook body of an event and a `Stripe-Signature` header for it."""
        with self._lock:
            if event_id not in self._payloads:
                raise _missing("event", event_id)
            payload = self._payloads[event_id]
        return payload, sign_payload(payload, self.webhook_secret, timestamp or int(time.time()))

    def deliver(self, event_id: str) -> dict[str, int]:
        """POST an event to every webhook URL once, now; returns url -> HTTP status."""
        with self._lock:
            urls = list(self._webhook_urls)
        return {url: self._post_event(event_id, url, attempt=1) for url in urls}

    def balance_change_csv(self, created_gte: int | None = None, created_lt: int | None = None,
                           *, metadata_keys: Sequence[str] = ("obligation_id",),
                           payment_metadata_keys: Sequence[str] = ()) -> str:
        """The platform's itemised balance changes, oldest first, in the columns of Stripe's
        balance_change_from_activity.itemized.3 plus connected_account,
        `transfer_metadata[<key>]` and (if asked) `payment_metadata[<key>]` (a charge's);
        amounts in decimal major units."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*REPORT_COLUMNS, *(f"transfer_metadata[{k}]" for k in metadata_keys),
                         *(f"payment_metadata[{k}]" for k in payment_metadata_keys)])
        with self._lock:
            rows = [bt for bt in self._all("balance_transaction") if bt["_account"] is None
                    and (created_gte is None or bt["created"] >= created_gte)
                    and (created_lt is None or bt["created"] < created_lt)]
            for bt in reversed(rows):
                source = self._objects.get(bt["source"], {})
                parent = self._objects.get(source.get("transfer", ""), source)  # via reversal
                charge = source if source.get("object") == "charge" else None
                transfer = parent if parent.get("object") == "transfer" else None
                cur = bt["currency"]
                writer.writerow([
                    bt["id"], _utc(bt["created"]), _utc(bt["available_on"]), cur,
                    _major(bt["amount"], cur), _major(bt["fee"], cur), _major(bt["net"], cur),
                    bt["reporting_category"], bt["source"], bt["description"] or "",
                    _major(charge["amount"], cur) if charge else "", cur if charge else "", "",
                    transfer["destination"] if transfer else "",
                    *(transfer["metadata"].get(k, "") if transfer else "" for k in metadata_keys),
                    *(charge["metadata"].get(k, "") if charge else ""
                      for k in payment_metadata_keys),
                ])
        return out.getvalue()

    # ------------------------------------------------------------------ state
    def _token(self, n: int) -> str:
        return "".join(secrets.choice(_ALNUM) for _ in range(n))

    def _new(self, obj_type: str, prefix: str, **fields: Any) -> Obj:
        self._seq += 1
        obj: Obj = {"id": f"{prefix}_{self._token(24)}", "object": obj_type,
                    "created": self.clock(), "livemode": False, **fields, "_seq": self._seq}
        self._objects[obj["id"]] = obj
        self._ids.setdefault(obj_type, []).append(obj["id"])
        return obj

    def _all(self, obj_type: str) -> list[Obj]:
        """Objects of a type, newest first (Stripe's list order)."""
        return [self._objects[i] for i in reversed(self._ids.get(obj_type, []))]

    def _get(self, obj_type: str, obj_id: str, param: str = "id") -> Obj:
        obj = self._objects.get(obj_id)
        if obj is None or obj["object"] != obj_type:
            raise _missing(obj_type, obj_id, param)
        return obj

    def _bt(self, amount: int, currency: str, type_: str, category: str, source: str, *,
            fee: int = 0, description: str | None = None, account: str | None = None) -> Obj:
        """A balance transaction, applied at once to the (platform or `account`) balance."""
        fee_details = [{"amount": fee, "application": None, "currency": currency,
                        "description": "Stripe processing fees", "type": "stripe_fee"}]
        bt = self._new("balance_transaction", "txn", amount=amount, currency=currency,
                       description=description, exchange_rate=None, fee=fee,
                       fee_details=fee_details if fee else [], net=amount - fee,
                       reporting_category=category, source=source, status="available",
                       type=type_, _account=account)
        bt["available_on"] = bt["created"]
        balance = self._balances.setdefault(account, {})
        balance[currency] = balance.get(currency, 0) + amount - fee
        return bt

    def _emit(self, type_: str, obj: Obj, *, account: str | None = None,
              previous: Obj | None = None, ctx: _Ctx | None = None,
              deliver: bool = True) -> None:
        """Record an event (a snapshot of `obj`) and queue it for webhook delivery (unless
        `deliver` is False: then only `deliver(event_id)` sends it)."""
        data: Obj = {"object": _strip(obj)}
        if previous is not None:
            data["previous_attributes"] = _strip(previous)
        event = self._new("event", "evt", api_version=API_VERSION, data=data,
                          pending_webhooks=len(self._webhook_urls), type=type_,
                          request={"id": ctx and ctx.request_id,
                                   "idempotency_key": ctx and ctx.idempotency_key})
        if account is not None:
            event["account"] = account
        self._payloads[event["id"]] = json.dumps(_strip(event), indent=2).encode()
        if deliver and self.auto_deliver_webhooks and self._webhook_urls:
            self._outbox.put(event["id"])

    def _paginate(self, items: list[Obj], params: Obj, url: str,
                  filters: dict[str, Callable[[Obj, Any], bool]] | None = None) -> Obj:
        """A Stripe list object of `items` (newest first) honouring filters and cursors."""
        limit = _int(params, "limit") or 10
        if limit > 100:
            raise _bad_param("This value must be less than or equal to 100.", "limit")
        for name, test in (filters or {}).items():
            items = [o for o in items if name not in params or test(o, params[name])]
        if "created" in params:
            items = [o for o in items if _created_ok(o["created"], params["created"])]
        cursor_param = "starting_after" if params.get("starting_after") else "ending_before"
        if cursor_id := params.get(cursor_param):
            cursor = self._objects.get(str(cursor_id))
            if cursor is None:
                raise _missing("object", str(cursor_id), cursor_param, status=400)
            key = (cursor["created"], cursor["_seq"])
            if cursor_param == "ending_before":
                newer = [o for o in items if (o["created"], o["_seq"]) > key]
                return {"object": "list", "data": newer[-limit:], "has_more": len(newer) > limit,
                        "url": url}
            items = [o for o in items if (o["created"], o["_seq"]) < key]
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}

    def _expand(self, value: Any, path: list[str]) -> Any:
        """Replace the id at `path` (e.g. `data.source`) with the object it names."""
        if isinstance(value, list):
            return [self._expand(v, path) for v in value]
        if not isinstance(value, dict) or not path or path[0] not in value:
            return value
        child = value[path[0]]
        if isinstance(child, str) and child in self._objects:
            child = _strip(self._objects[child])
        value[path[0]] = self._expand(child, path[1:])
        return value

    # ------------------------------------------------------------------ HTTP
    def _wsgi(self, environ: Obj, start_response: Any) -> Iterable[bytes]:
        try:
            response = self._respond(Request(environ))
        except _Drop:
            with contextlib.suppress(OSError):
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("connection dropped by stripe_local") from None
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: Obj | bytes, headers: dict[str, str] | None = None) -> Response:
        raw = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode() + b"\n"
        return Response(raw, status=status, headers=headers, content_type="application/json")

    def _respond(self, request: Request) -> Response:
        path, method = request.path, request.method.upper()
        if path.startswith("/_local/"):
            try:
                return self._control(request, path, method)
            except (StripeLocalError, ValueError, TypeError) as exc:
                err = exc if isinstance(exc, StripeLocalError) else StripeLocalError(400, str(exc))
                return self._json(err.status, err.body())
        request_id = "req_" + self._token(14)
        headers = {"Request-Id": request_id,
                   "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION)}
        scheme, _, api_key = request.headers.get("Authorization", "").partition(" ")
        api_key = api_key.strip() if scheme.lower() == "bearer" else ""
        if api_key not in self._api_keys:
            message = (f"Invalid API Key provided: {api_key[:8]}****{api_key[-4:]}" if api_key
                       else "You did not provide an API key. You need to provide your API key in "
                       "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                       "Bearer YOUR_SECRET_KEY').")
            headers["WWW-Authenticate"] = 'Bearer realm="Stripe"'
            return self._json(401, StripeLocalError(401, message).body(), headers)
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        if key:
            headers["Idempotency-Key"] = key
        fault = self._take_fault(path, method)
        if fault and fault.error == "delay" and not fault.after:
            time.sleep(fault.delay)
        elif fault and fault.error == "network" and not fault.after:
            raise _Drop()
        elif fault and not fault.after:
            status, type_, code, message = FAULTS[fault.error]
            return self._json(status, StripeLocalError(status, message, code=code,
                                                       type_=type_).body(), headers)
        pairs = [*request.args.items(multi=True)]
        pairs += request.form.items(multi=True) if method == "POST" else []
        ctx = _Ctx(api_key, request.headers.get("Stripe-Account"), key, request_id)
        status, body, replayed = self._execute(method, path, pairs, ctx)
        if replayed:
            headers.update({"Idempotent-Replayed": "true", "Original-Request": replayed})
        with self._lock:
            self.requests.append(Handled(method, path, key, bool(replayed), status,
                                         request.query_string.decode()))
        if fault and fault.error == "delay" and fault.after:
            if fault.release is not None:
                fault.release.wait(fault.delay)
            else:
                time.sleep(fault.delay)
        elif fault and fault.after:  # executed and saved, but the client never hears about it
            if fault.error == "network":
                raise _Drop()
            status = 500
            body = StripeLocalError(500, FAULTS["api_error"][3], type_="api_error").body()
        return self._json(status, body, headers)

    def _take_fault(self, path: str, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fnmatch.fnmatchcase(path, fault.pattern) and fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _execute(self, method: str, path: str, pairs: list[tuple[str, str]],
                 ctx: _Ctx) -> tuple[int, Obj | bytes, str | None]:
        """Run a request atomically, or replay the response saved under its Idempotency-Key.
        Returns (status, body, id of the replayed original request)."""
        fingerprint = json.dumps([method, path, ctx.account, sorted(pairs)])
        scope = (ctx.api_key, ctx.idempotency_key or "")
        with self._lock:
            saved = self._saved.get(scope) if ctx.idempotency_key else None
            if saved is not None and self.clock() - saved[4] >= IDEMPOTENCY_KEY_SECONDS:
                del self._saved[scope]  # forgotten: the request is executed afresh
                saved = None
            if saved is not None:
                saved_fingerprint, status, raw, original, _ = saved
                if saved_fingerprint == fingerprint:
                    return status, raw, original
                return 400, StripeLocalError(400, (
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with. Try using a key other than "
                    f"'{ctx.idempotency_key}' if you meant to execute a different request."),
                    type_="idempotency_error").body(), None
            status, body, save = 200, {}, True
            try:
                body = self._route(method, path, parse_form(pairs), ctx)
            except StripeLocalError as exc:
                status, body, save = exc.status, exc.body(), exc.saved
            except Exception as exc:  # a bug here should still answer the way Stripe would
                status, body, save = 500, StripeLocalError(500, repr(exc)).body(), False
            raw = json.dumps(body, indent=2).encode() + b"\n"
            if ctx.idempotency_key and save:
                self._saved[scope] = (fingerprint, status, raw, ctx.request_id, self.clock())
            return status, raw, None

    def _route(self, method: str, path: str, params: Obj, ctx: _Ctx) -> Obj:
        for route_method, pattern, handler, accepted in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                unknown = sorted(set(params) - accepted - {"expand"})
                if unknown:
                    raise _bad_param(f"Received unknown parameter: {unknown[0]}", unknown[0],
                                     "parameter_unknown")
                rendered: Obj = _strip(getattr(self, handler)(ctx, params, **match.groupdict()))
                expand = params.get("expand", [])
                for item in [expand] if isinstance(expand, str) else expand:
                    self._expand(rendered, str(item).split("."))
                return rendered
        raise StripeLocalError(404, f"Unrecognized request URL ({method}: {path}).")

    def _control(self, request: Request, path: str, method: str) -> Response:
        """`/_local/...`: the Python helpers over HTTP (form or query parameters)."""
        params = parse_form([*request.args.items(multi=True), *request.form.items(multi=True)])
        arg: Callable[..., Any] = params.get
        match = re.fullmatch(r"/_local/(\w+)(?:/(\w+))?(?:/(\w+))?", path)
        route = (method, *(match.groups() if match else ()))
        result: Obj = {"ok": True}
        if route[:2] == ("GET", "onboarding"):  # the URL of an account link
            account, return_url = self._links.get(str(route[2]), ("", None))
            self.onboard_account(account)
            if return_url:
                return Response(status=302, headers={"Location": return_url})
            return Response(f"Account {account} onboarded.\n", content_type="text/plain")
        if path == "/_local/reports/balance_change.csv" and method == "GET":
            created = arg("created") if isinstance(arg("created"), dict) else {}
            gte, lt = created.get("gte"), created.get("lt")
            text = self.balance_change_csv(gte and int(gte), lt and int(lt))
            return Response(text, content_type="text/csv; charset=utf-8")
        if route[:2] == ("GET", "events") and route[3] == "signed":
            payload, header = self.signed_event(str(route[2]))
            result = {"payload": payload.decode(), "signature": header}
        elif route[:2] == ("POST", "events") and route[3] == "deliver":
            result = {"results": self.deliver(str(route[2]))}
        elif route[:2] == ("POST", "accounts") and route[3] == "onboard":
            result = self.onboard_account(str(route[2]), deliver=arg("deliver") != "false")
        elif route == ("POST", "fail_next", None, None):
            glob = _str(params, "path", required=True) or ""
            self.fail_next(glob, int(arg("times", 1)), arg("error", "api_error"),
                           method=arg("method"), after_execution=arg("after_execution") == "true")
        elif route == ("POST", "delay_next", None, None):
            glob = _str(params, "path", required=True) or ""
            self.delay_next(glob, float(arg("seconds")), int(arg("times", 1)), method=arg("method"))
        elif route == ("POST", "balance", None, None):
            self.set_balance(int(arg("amount")), arg("currency"), arg("account"))
        elif route == ("POST", "webhook_urls", None, None):
            self.add_webhook_url(arg("url"))
        elif route == ("POST", "payouts", None, None):
            amount = arg("amount")
            result = self.create_payout(arg("account"), amount and int(amount), arg("currency"),
                                        fail=arg("fail") == "true")
        else:
            raise StripeLocalError(404, f"Unknown control URL ({method}: {path}).")
        return self._json(200, result)

    # ------------------------------------------------------------------ webhooks
    def _delivery_loop(self, stopping: threading.Event) -> None:
        """Deliver queued events to every endpoint, retrying non-2xx answers."""
        while not stopping.is_set():
            try:
                event_id = self._outbox.get(timeout=0.05)
            except queue.Empty:
                continue
            with self._lock:
                urls = list(self._webhook_urls)
            for url in urls:
                for attempt, delay in enumerate((*self.webhook_retry_delays, None), start=1):
                    status = self._post_event(event_id, url, attempt)
                    if 200 <= status < 300 or delay is None or stopping.wait(delay):
                        break

    def _post_event(self, event_id: str, url: str, attempt: int) -> int:
        payload, signature = self.signed_event(event_id)  # signed afresh for every attempt
        request = urllib.request.Request(url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        with self._lock:
            self.deliveries.append(Delivery(event_id, url, status, attempt))
        return status

    # ------------------------------------------------------------------ API endpoints
    def _retrieve(self, ctx: _Ctx, params: Obj, coll: str, id: str) -> Obj:
        return self._get(self.COLLECTIONS[coll], id)

    def _create_account(self, ctx: _Ctx, params: Obj) -> Obj:
        type_ = _str(params, "type", required="controller" not in params)
        if type_ not in (None, "express", "custom", "standard"):
            raise _bad_param("Invalid type: must be one of custom, express, or standard", "type")
        caps = params.get("capabilities", {})
        if not isinstance(caps, dict):
            raise _bad_param("Invalid capabilities: must be a hash", "capabilities")
        requested = [name for name, spec in caps.items()
                     if isinstance(spec, dict) and spec.get("requested") == "true"]
        account = self._new(
            "account", "acct", type=type_ or "none", business_type=params.get("business_type"),
            business_profile=params.get("business_profile") or {},
            capabilities={name: "inactive" for name in requested}, charges_enabled=False,
            payouts_enabled=False, details_submitted=False,
            country=(_str(params, "country") or "US").upper(),
            default_currency=(_str(params, "default_currency") or self.currency).lower(),
            email=_str(params, "email"), metadata=_metadata(params),
            requirements={"currently_due": ["external_account", "tos_acceptance.date"],
                          "eventually_due": [], "past_due": [],
                          "disabled_reason": "requirements.past_due"})
        self._balances[account["id"]] = {}
        return account

    def _create_account_link(self, ctx: _Ctx, params: Obj) -> Obj:
        account_id = _str(params, "account", required=True) or ""
        if _str(params, "type", required=True) not in ("account_onboarding", "account_update"):
            raise _bad_param("Invalid type: must be account_onboarding or account_update", "type")
        self._get("account", account_id, param="account")
        token = self._token(32)
        self._links[token] = (account_id, _str(params, "return_url"))
        return {"object": "account_link", "created": self.clock(),
                "expires_at": self.clock() + 300, "url": f"{self.url}/_local/onboarding/{token}"}

    def _create_transfer(self, ctx: _Ctx, params: Obj) -> Obj:
        amount = _int(params, "amount", required=True) or 0
        currency = _currency(params)
        destination = _str(params, "destination", required=True) or ""
        metadata = _metadata(params)
        account = self._objects.get(destination)
        if account is None or account["object"] != "account":
            raise _missing("destination", destination, "destination", status=400)
        if account["capabilities"].get("transfers") != "active":
            raise StripeLocalError(400, "Your destination account needs to have at least one of "
                                   "the following capabilities enabled: transfers, "
                                   "crypto_transfers, legacy_payments", param="destination",
                                   code="insufficient_capabilities_for_transfer")
        if self._balances[None].get(currency, 0) < amount:
            raise StripeLocalError(400, FAULTS["balance_insufficient"][3],
                                   code="balance_insufficient")
        transfer = self._new(
            "transfer", "tr", amount=amount, amount_reversed=0, balance_transaction=None,
            currency=currency, description=_str(params, "description"), destination=destination,
            destination_payment="py_" + self._token(24), metadata=metadata, reversed=False,
            source_transaction=params.get("source_transaction"),
            source_type=params.get("source_type", "card"),
            transfer_group=_str(params, "transfer_group"))
        transfer["reversals"] = {"object": "list", "data": [], "has_more": False, "total_count": 0,
                                 "url": f"/v1/transfers/{transfer['id']}/reversals"}
        transfer["balance_transaction"] = self._bt(-amount, currency, "transfer", "transfer",
                                                   transfer["id"])["id"]
        self._bt(amount, currency, "payment", "charge", transfer["destination_payment"],
                 account=destination)  # what the connected account sees
        self._emit("transfer.created", transfer, ctx=ctx)
        return transfer

    def _list_transfers(self, ctx: _Ctx, params: Obj) -> Obj:
        return self._paginate(self._all("transfer"), params, "/v1/transfers", {
            "destination": lambda o, v: o["destination"] == v,
            "transfer_group": lambda o, v: o["transfer_group"] == v})

    def _update_transfer(self, ctx: _Ctx, params: Obj, id: str) -> Obj:
        transfer = self._get("transfer", id)
        previous: Obj = {k: copy.deepcopy(transfer[k]) for k in ("description", "metadata")
                         if k in params}
        transfer["metadata"] = _metadata(params, transfer["metadata"])
        if "description" in params:
            transfer["description"] = _str(params, "description") or None
        self._emit("transfer.updated", transfer, previous=previous, ctx=ctx)
        return transfer

    def _reversals_of(self, transfer_id: str) -> list[Obj]:
        return [r for r in self._all("transfer_reversal") if r["transfer"] == transfer_id]

    def _create_reversal(self, ctx: _Ctx, params: Obj, id: str) -> Obj:
        transfer = self._get("transfer", id)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = _int(params, "amount") or remaining
        metadata = _metadata(params)
        if remaining == 0:
            raise StripeLocalError(400, f"Transfer {id} has already been fully reversed.")
        if amount > remaining:
            raise StripeLocalError(400, f"Reversal amount ({amount}) exceeds the amount left to "
                                   f"reverse on transfer {id} ({remaining}).", param="amount",
                                   code="amount_too_large")
        cur, destination = transfer["currency"], transfer["destination"]
        if self._balances.setdefault(destination, {}).get(cur, 0) < amount:
            raise StripeLocalError(400, "The destination account has insufficient funds to "
                                   "cover the reversal.", code="balance_insufficient")
        reversal = self._new("transfer_reversal", "trr", amount=amount, balance_transaction=None,
                             currency=cur, destination_payment_refund="pyr_" + self._token(24),
                             metadata=metadata, source_refund=None, transfer=id)
        reversal["balance_transaction"] = self._bt(amount, cur, "transfer_refund",
                                                   "transfer_reversal", reversal["id"])["id"]
        self._bt(-amount, cur, "payment_refund", "refund", reversal["destination_payment_refund"],
                 account=destination)
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": False}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        reversals = self._reversals_of(id)
        transfer["reversals"].update(data=reversals[:10], has_more=len(reversals) > 10,
                                     total_count=len(reversals))
        self._emit("transfer.reversed", transfer, previous=previous, ctx=ctx)
        return reversal

    def _list_reversals(self, ctx: _Ctx, params: Obj, id: str) -> Obj:
        self._get("transfer", id)
        return self._paginate(self._reversals_of(id), params, f"/v1/transfers/{id}/reversals")

    def _create_payment_intent(self, ctx: _Ctx, params: Obj) -> Obj:
        amount = _int(params, "amount", required=True) or 0
        currency = _currency(params)
        if params.get("confirm") not in (None, "true", "false"):
            raise _bad_param(f"Invalid boolean: {params['confirm']}", "confirm")
        if params.get("capture_method") not in (None, "automatic", "automatic_async"):
            raise _bad_param("stripe_local supports automatic capture only", "capture_method")
        payment_method = _str(params, "payment_method")
        pi = self._new(
            "payment_intent", "pi", amount=amount, amount_capturable=0, amount_received=0,
            capture_method="automatic", confirmation_method="automatic", currency=currency,
            customer=_str(params, "customer"), description=_str(params, "description"),
            last_payment_error=None, latest_charge=None, metadata=_metadata(params),
            next_action=None, payment_method=payment_method, payment_method_types=["card"],
            receipt_email=_str(params, "receipt_email"),
            status="requires_confirmation" if payment_method else "requires_payment_method",
            transfer_group=_str(params, "transfer_group"))
        pi["client_secret"] = f"{pi['id']}_secret_{self._token(24)}"
        self._emit("payment_intent.created", pi, ctx=ctx)
        return self._confirm(pi, payment_method, ctx) if params.get("confirm") == "true" else pi

    def _confirm_payment_intent(self, ctx: _Ctx, params: Obj, id: str) -> Obj:
        pi = self._get("payment_intent", id, param="intent")
        return self._confirm(pi, _str(params, "payment_method"), ctx)

    def _confirm(self, pi: Obj, payment_method: str | None, ctx: _Ctx) -> Obj:
        """Charge the intent's card: `pm_card_chargeDeclined*` decline (HTTP 402, as Stripe)."""
        if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeLocalError(400, "You cannot confirm this PaymentIntent because it has a "
                                   f"status of {pi['status']}.",
                                   code="payment_intent_unexpected_state")
        pm = payment_method or pi["payment_method"]
        if pm is None:
            raise StripeLocalError(400, "You cannot confirm this PaymentIntent because it's "
                                   "missing a payment method.", param="payment_method",
                                   code="payment_intent_unexpected_state")
        if not pm.startswith("pm_"):
            raise _missing("PaymentMethod", pm, "payment_method", status=400)
        decline = DECLINES.get(pm)
        cur, amount = pi["currency"], pi["amount"]
        charge = self._new(
            "charge", "ch", amount=amount, amount_captured=0 if decline else amount,
            amount_refunded=0, balance_transaction=None, captured=not decline, currency=cur,
            customer=pi["customer"], description=pi["description"],
            failure_code=decline and decline[0], failure_message=decline and decline[2],
            metadata=dict(pi["metadata"]), paid=not decline, payment_intent=pi["id"],
            payment_method=pm, refunded=False, status="failed" if decline else "succeeded",
            transfer_group=pi["transfer_group"])
        pi["latest_charge"] = charge["id"]
        if decline:
            code, decline_code, message = decline
            pi.update(status="requires_payment_method", payment_method=None, last_payment_error={
                "type": "card_error", "code": code, "decline_code": decline_code,
                "message": message, "charge": charge["id"],
                "payment_method": {"id": pm, "object": "payment_method", "type": "card"}})
            self._emit("payment_intent.payment_failed", pi, ctx=ctx)
            raise StripeLocalError(402, message, code=code, type_="card_error",
                                   decline_code=decline_code, charge=charge["id"],
                                   payment_intent=_strip(pi))
        fee = (amount * 29 + 500) // 1000 + (0 if cur in ZERO_DECIMAL else 30)  # 2.9% + 30
        charge["balance_transaction"] = self._bt(amount, cur, "charge", "charge", charge["id"],
                                                 fee=fee, description=pi["description"])["id"]
        pi.update(status="succeeded", payment_method=pm, amount_received=amount)
        self._emit("payment_intent.succeeded", pi, ctx=ctx)
        return pi

    def _get_balance(self, ctx: _Ctx, params: Obj) -> Obj:
        balances = sorted((self._balances.get(ctx.account) or {self.currency: 0}).items())
        return {"object": "balance", "livemode": False,
                "available": [{"amount": amount, "currency": cur, "source_types": {"card": amount}}
                              for cur, amount in balances],
                "pending": [{"amount": 0, "currency": cur, "source_types": {"card": 0}}
                            for cur, _ in balances]}

    def _list_balance_transactions(self, ctx: _Ctx, params: Obj) -> Obj:
        items = [bt for bt in self._all("balance_transaction") if bt["_account"] == ctx.account]
        return self._paginate(items, params, "/v1/balance_transactions", {
            "type": lambda o, v: o["type"] == v, "source": lambda o, v: o["source"] == v,
            "currency": lambda o, v: o["currency"] == str(v).lower()})

    def _list_events(self, ctx: _Ctx, params: Obj) -> Obj:
        """Platform events, or a connected account's with the Stripe-Account header."""
        items = [e for e in self._all("event") if e.get("account") == ctx.account]
        return self._paginate(items, params, "/v1/events", {
            "type": lambda o, v: fnmatch.fnmatchcase(o["type"], str(v)),
            "types": lambda o, v: o["type"] in (v if isinstance(v, list) else [v])})


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground (offline dev mode)."""
    parser = argparse.ArgumentParser(prog="python -m services.payouts.stripe_local",
                                     description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--api-key", default="sk_test_local")
    parser.add_argument("--webhook-url", action="append", default=[], dest="webhook_urls")
    parser.add_argument("--webhook-secret", default=None, help="default: a random whsec_...")
    parser.add_argument("--platform-balance", type=int, default=10**12)
    parser.add_argument("--currency", default="usd")
    args = parser.parse_args(argv)
    server = StripeLocal(api_key=args.api_key, webhook_secret=args.webhook_secret,
                         webhook_urls=args.webhook_urls, platform_balance=args.platform_balance,
                         currency=args.currency)
    url = server.start(args.host, args.port)
    print(f"stripe_local listening on {url} api_key={args.api_key} "
          f"webhook_secret={server.webhook_secret}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
