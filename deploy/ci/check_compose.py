"""Checks of docker-compose.yml as docker-compose 1.29.2 resolved it (`config` output), run by
deploy/check.sh after `docker-compose config -q` has accepted the file.

    python check_compose.py RAW_COMPOSE_FILE RESOLVED.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

SERVICES = ["certification", "listings", "orders", "payouts"]
VETA = [*SERVICES, "gateway"]


def main() -> int:
    raw_path, resolved_path = Path(sys.argv[1]), Path(sys.argv[2])
    raw = yaml.safe_load(raw_path.read_text())
    cfg = yaml.safe_load(resolved_path.read_text())
    ok: list[str] = []
    failed: list[str] = []

    def c(cond: bool, what: str) -> None:
        (ok if cond else failed).append(what)
        if not cond:
            print(f"  FAIL {what}")

    c(str(raw.get("version")) == "3.8", f'compose file version "3.8" ({raw.get("version")!r})')
    svcs = cfg.get("services", {})
    expected = {"rabbitmq", "postgres", "migrate", *VETA}
    c(set(svcs) == expected, f"services {sorted(expected)} ({sorted(svcs)})")

    r = svcs.get("rabbitmq", {})
    c(
        r.get("image") == "rabbitmq:3.13-management",
        f"rabbitmq image rabbitmq:3.13-management ({r.get('image')})",
    )
    c(
        "rabbitmq-diagnostics -q ping" in " ".join(r.get("healthcheck", {}).get("test", [])),
        "rabbitmq healthcheck: rabbitmq-diagnostics -q ping",
    )
    c(bool(r.get("hostname")), "rabbitmq has a fixed hostname (stable node name for its volume)")

    p = svcs.get("postgres", {})
    c(p.get("image") == "postgres:16", f"postgres image postgres:16 ({p.get('image')})")
    c(
        "pg_isready" in " ".join(p.get("healthcheck", {}).get("test", [])),
        "postgres healthcheck: pg_isready",
    )
    vols = [
        v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}"
        for v in p.get("volumes", [])
    ]
    c(
        any(
            "deploy/postgres/init-databases.sh" in v and "/docker-entrypoint-initdb.d/" in v
            for v in vols
        ),
        "postgres mounts deploy/postgres/init-databases.sh into /docker-entrypoint-initdb.d",
    )
    c(
        Path("deploy/postgres/init-databases.sh").is_file(),
        "deploy/postgres/init-databases.sh exists",
    )

    root = raw_path.resolve().parent
    for name in ["migrate", *VETA]:
        s = svcs.get(name, {})
        b = s.get("build", {})
        c(
            Path(b.get("context", "")).resolve() == root
            and b.get("dockerfile") == "deploy/Dockerfile",
            f"{name}: built from deploy/Dockerfile with the repository root as context",
        )
        env = s.get("environment", {})
        c("VETA_AMQP_URI" in env, f"{name}: VETA_AMQP_URI set")
        c(env.get("VETA_LOG_FORMAT") == "json", f"{name}: VETA_LOG_FORMAT=json")

    m = svcs.get("migrate", {})
    c(m.get("command") == ["migrate"], f"migrate runs `veta migrate` ({m.get('command')})")
    c(
        all(f"VETA_{s.upper()}_DATABASE_URL" in m.get("environment", {}) for s in SERVICES),
        "migrate has all four database URLs",
    )
    c(m.get("restart") in (None, "no"), "migrate is not restarted once done")

    for name in VETA:
        s = svcs.get(name, {})
        c(s.get("command") == ["run", name], f"{name}: runs `veta run {name}` ({s.get('command')})")
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        c(
            "/health/" in test and "urllib" in test,
            f"{name}: healthcheck on /health/ with python's urllib",
        )
        deps = s.get("depends_on", {})
        c(
            isinstance(deps, dict)
            and all(isinstance(v, dict) and "condition" in v for v in deps.values()),
            f"{name}: every depends_on has a condition",
        )
        c(
            deps.get("rabbitmq", {}).get("condition") == "service_healthy",
            f"{name}: waits for a healthy rabbitmq",
        )
        env = s.get("environment", {})
        if name in SERVICES:
            c(
                deps.get("postgres", {}).get("condition") == "service_healthy",
                f"{name}: waits for a healthy postgres",
            )
            c(
                deps.get("migrate", {}).get("condition") == "service_completed_successfully",
                f"{name}: waits for migrate to complete successfully",
            )
            own = f"VETA_{name.upper()}_DATABASE_URL"
            c(
                env.get(own, "").startswith("postgresql+psycopg2://")
                and env[own].endswith(f"@postgres:5432/veta_{name}"),
                f"{name}: {own} points at postgres:5432/veta_{name}",
            )
            c(
                [k for k in env if k.endswith("_DATABASE_URL")] == [own],
                f"{name}: no other service's database URL",
            )
        ports = s.get("ports", [])
        if name == "gateway":
            c(
                any(
                    str(pt.get("published")) == "8000" and str(pt.get("target")) == "8000"
                    for pt in ports
                ),
                "gateway published on port 8000",
            )
            c("VETA_JWT_SECRET" in env, "gateway: VETA_JWT_SECRET set")
        elif name != "payouts":
            c(not ports, f"{name}: publishes no port (it scales with --scale)")
    c(
        {"VETA_STRIPE_API_KEY", "VETA_STRIPE_WEBHOOK_SECRET"}
        <= set(svcs.get("payouts", {}).get("environment", {})),
        "payouts: Stripe secrets set",
    )

    print(f"compose contract: {len(ok)} checks passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
