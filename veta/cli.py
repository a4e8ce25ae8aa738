"""The `veta` command: run the system, one service, migrations, or print a token."""

from __future__ import annotations

import warnings

# eventlet warns on import that it is deprecated; nameko 2 has no other concurrency model.
warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _run(service_names: list[str], config: dict[str, Any]) -> None:
    from nameko.cli.run import run

    from veta.services import SERVICE_CLASSES

    run([SERVICE_CLASSES[name] for name in service_names], config)


def dev(args: argparse.Namespace) -> None:
    from gateway.auth import TokenSettings, issue_token
    from shared.caller import Role
    from veta.dev import (
        dev_config,
        embedded_runner,
        load_demo,
        migrate_all,
        prepare_demo_payouts,
        start_local_stripe,
    )

    config = dev_config(Path(args.data_dir), args.port, args.amqp_uri)
    migrate_all(config)
    # No Stripe key: a local Stripe-compatible server, so premiums can be paid offline.
    stripe_local = None if config["STRIPE"].get("api_key") else start_local_stripe(
        config, args.port)
    runner = embedded_runner(config, args.port)
    runner.start()
    url = f"http://127.0.0.1:{args.port}"
    broker = args.amqp_uri or "in-process (memory://)"
    print(f"Veta is running: open {url}/ for the console, {url}/graphql for GraphiQL",
          flush=True)
    print(f"  data in {Path(args.data_dir).resolve()}, broker {broker}", flush=True)
    if stripe_local is not None:
        print(f"  Stripe: no key configured, so a local Stripe test server runs at "
              f"{stripe_local.url} (no real money moves; webhooks go to payouts on port "
              f"{args.port + 1}); set VETA_STRIPE_API_KEY to use Stripe", flush=True)
    settings = TokenSettings.from_config(config)
    if args.demo:
        demo = load_demo(config)
        if stripe_local is not None:
            prepare_demo_payouts(config, demo, stripe_local)
        print("  demo data loaded; tokens for GraphiQL's Headers tab "
              "({\"Authorization\": \"Bearer …\"}):", flush=True)
        producer = demo["producers"][0]["id"]
        for role, org in ((Role.CERTIFIER, None), (Role.PRODUCER, producer),
                          (Role.BUYER, "demo-refinery"), (Role.FINANCE, None)):
            who = f"{role} {org}" if org else str(role)
            print(f"    {who}: {issue_token(settings, role, org)}", flush=True)
    else:
        print("  get a token with: veta token --role CERTIFIER", flush=True)
    try:
        runner.wait()
    except KeyboardInterrupt:
        runner.stop()
    finally:
        if stripe_local is not None:
            stripe_local.stop()


def run_service(args: argparse.Namespace) -> None:
    from shared.settings import nameko_config

    _run([args.service], nameko_config())


def migrate(args: argparse.Namespace) -> None:
    from shared.migrations import upgrade
    from shared.settings import SERVICES, database_url

    for name in [args.service] if args.service else list(SERVICES):
        url = database_url(name)
        if not url:
            sys.exit(f"set VETA_{name.upper()}_DATABASE_URL to migrate {name}")
        upgrade(name, url)
        print(f"{name}: migrated to the latest revision")


def token(args: argparse.Namespace) -> None:
    from gateway.auth import TokenSettings, issue_token
    from shared.caller import Role
    from shared.settings import nameko_config
    from veta.dev import jwt_secret

    config = nameko_config()
    settings = TokenSettings.from_config(config)
    if not settings.secret:
        settings = TokenSettings(secret=jwt_secret(Path(args.data_dir)),
                                 issuer=settings.issuer, audience=settings.audience)
    try:
        print(issue_token(settings, Role(args.role), args.org, args.subject, args.ttl))
    except ValueError as exc:
        sys.exit(str(exc))


def dlq(args: argparse.Namespace) -> None:
    import json

    from shared import dead_letters
    from shared.settings import nameko_config

    config = nameko_config()
    if args.action == "list":
        for letter in dead_letters.list_letters(config):
            print(f"{letter['id']}  {letter['failed_at']}  {letter['queue']}  "
                  f"attempts={letter['attempts']}  {letter['error']}")
        return
    if not args.id:
        sys.exit(f"veta dlq {args.action} needs the id of a dead letter (see veta dlq list)")
    action = {"show": None, "replay": dead_letters.replay, "discard": dead_letters.discard}
    try:
        if args.action == "show":
            letter = next(letter for letter in dead_letters.list_letters(config)
                          if letter["id"] == args.id)
        else:
            letter = action[args.action](config, args.id)  # type: ignore[misc]
    except (KeyError, StopIteration):
        sys.exit(f"no dead letter {args.id}")
    print(json.dumps(letter, indent=2, default=str))
    if args.action != "show":
        print(f"{args.action}ed {args.id}")


def reconcile(args: argparse.Namespace) -> None:
    import getpass
    from datetime import UTC, datetime

    from services.payouts.runs import command_line
    from shared.errors import VetaError
    from shared.settings import nameko_config

    try:
        summary = command_line(
            nameko_config(), args.period, csv_path=args.csv, chart_path=args.chart,
            report_path=args.report, run_id=args.run,
            actor=f"cli:{getpass.getuser()}", now=lambda: datetime.now(UTC))
    except VetaError as exc:
        sys.exit(exc.message)
    counts = ", ".join(f"{name} {count}" for name, count in summary["counts"].items())
    print(f"reconciliation {summary['id']} of {summary['period']} from {summary['source']}: "
          f"{summary['status']}{' (' + summary['error'] + ')' if summary['error'] else ''}")
    print(f"  {counts}")
    for path in (args.csv, args.chart):
        if path:
            print(f"  wrote {path}")
    if summary["status"] != "DONE":
        sys.exit(1)


def docs(args: argparse.Namespace) -> None:
    from veta.docs import GENERATED

    stale = []
    for path, render in GENERATED.items():
        text = render()
        target = Path(args.root) / path
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(path)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {path}")
    if stale:
        sys.exit(f"out of date with the code: {', '.join(stale)}; run `veta docs` and commit")


def parser() -> argparse.ArgumentParser:
    from veta.dev import DEFAULT_DATA_DIR

    root = argparse.ArgumentParser(prog="veta", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("dev", help="run the whole system in one process")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--demo", action="store_true", help="load demonstration data")
    p.add_argument("--amqp-uri", help="use this RabbitMQ instead of the in-process broker")
    p.set_defaults(handler=dev)

    p = commands.add_parser("run", help="run one service against VETA_* configuration")
    p.add_argument("service", choices=["certification", "listings", "orders", "payouts",
                                       "gateway"])
    p.set_defaults(handler=run_service)

    p = commands.add_parser("migrate", help="apply database migrations")
    p.add_argument("service", nargs="?", choices=["certification", "listings", "orders",
                                                  "payouts"])
    p.set_defaults(handler=migrate)

    p = commands.add_parser("token", help="print a signed development token")
    p.add_argument("--role", required=True,
                   choices=["PRODUCER", "BUYER", "CERTIFIER", "FINANCE", "ADMIN"])
    p.add_argument("--org", help="the producer or buyer id (PRODUCER and BUYER)")
    p.add_argument("--subject", help="the user id to put in the token")
    p.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.set_defaults(handler=token)

    p = commands.add_parser("dlq", help="inspect, replay or discard dead-lettered events")
    p.add_argument("action", choices=["list", "show", "replay", "discard"])
    p.add_argument("id", nargs="?", help="a dead letter's id, from `veta dlq list`")
    p.set_defaults(handler=dlq)

    p = commands.add_parser("reconcile", help="reconcile a period's premiums with Stripe")
    p.add_argument("--period", required=True, help="a month (2026-10) or a year (2026)")
    p.add_argument("--csv", help="write every line of the run to this CSV file")
    p.add_argument("--chart", help="write premiums paid per producer and month (SVG)")
    p.add_argument("--report", help="Stripe's itemised balance-change report (CSV) to use "
                   "instead of fetching balance transactions through the API")
    p.add_argument("--run", help="export this stored run instead of running a new one")
    p.set_defaults(handler=reconcile)

    p = commands.add_parser("docs", help="write docs/schema.graphql and docs/events.md")
    p.add_argument("--check", action="store_true", help="fail if the committed ones differ")
    p.add_argument("--root", default=".")
    p.set_defaults(handler=docs)
    return root


def main(argv: list[str] | None = None) -> None:
    import os

    from shared.observability import configure_logging

    configure_logging(json_lines=os.environ.get("VETA_LOG_FORMAT") == "json")
    args = parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
