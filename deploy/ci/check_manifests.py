"""Offline checks of a rendered Kustomize overlay (run by deploy/check.sh in its tools venv).

    python check_manifests.py OVERLAY RENDERED.yaml CNPG_OUT.json [--k8s-versions 1.29.0,1.37.0]

1. Built-in kinds: kubernetes-validate, strict (unknown fields are errors), for each version.
2. RabbitmqCluster: deploy/schemas/rabbitmqcluster-v1beta1.schema.json, a hand-written schema
   (no registry package here ships the operator's CRD schema), Kubernetes core types by
   reference to kubernetes-validate's schemas. Said loudly in the output.
3. CloudNativePG Cluster: written to CNPG_OUT.json for deploy/ci/node/validate-cnpg.mjs (the
   CRD's own schema, from npm). Any other kind fails: nothing goes unchecked silently.
4. Veta's own contract: probes, resources, security context, env and secret references,
   Services, HPAs, Ingress, migration Job, operators' objects, per-overlay expectations.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
from referencing import Registry, Resource

SERVICES = ["certification", "listings", "orders", "payouts"]
DEPLOYMENTS = [f"veta-{s}" for s in SERVICES] + ["veta-gateway"]
HPA_TARGETS = {"veta-gateway", "veta-listings", "veta-orders"}
VETA_SECRET_KEYS = {"jwt-secret", "stripe-api-key", "stripe-webhook-secret"}
EXPECT = {
    # overlay: deployment replicas (min), RabbitMQ nodes, PostgreSQL instances, PDBs, TLS
    "dev": {"replicas": 1, "rabbitmq": 1, "instances": 1, "pdb": False, "tls": False},
    "prod": {"replicas": 3, "rabbitmq": 3, "instances": 3, "pdb": True, "tls": True},
}
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
RABBIT_SCHEMA = "rabbitmqcluster-v1beta1.schema.json"


class Report:
    def __init__(self) -> None:
        self.ok: list[str] = []
        self.failed: list[str] = []

    def check(self, condition: bool, what: str) -> bool:
        (self.ok if condition else self.failed).append(what)
        if not condition:
            print(f"  FAIL {what}")
        return condition


def kn(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def k8s_definitions_resource(version: str) -> Resource:
    """kubernetes-validate's _definitions.json for `version` (strict), as a referencing resource."""
    import importlib.resources as ir

    base = ir.files("kubernetes_validate") / "kubernetes-json-schema"
    wanted = kubernetes_validate.utils.major_minor(version)
    dirs = sorted(
        (p.name for p in base.iterdir() if p.name.endswith("-local-strict")),
        key=lambda n: [int(x) for x in re.findall(r"\d+", n)[:2]],
    )
    chosen = [
        d
        for d in dirs
        if [int(x) for x in re.findall(r"\d+", d)[:2]] <= [int(x) for x in wanted.split(".")]
    ]
    if not chosen:
        raise SystemExit(f"kubernetes-validate has no schemas for {version}")
    contents = json.loads((base / chosen[-1] / "_definitions.json").read_text())
    return Resource.from_contents(contents)


def validate_builtin(docs: list[dict], versions: list[str], report: Report) -> None:
    for obj in docs:
        passed = []
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
                passed.append(version)
                report.check(True, f"{kn(obj)} valid against Kubernetes {version} (strict)")
            except ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                report.check(
                    False, f"{kn(obj)} invalid against Kubernetes {version}: {path}: {e.message}"
                )
            except SchemaNotFoundError:
                report.check(
                    False,
                    f"{kn(obj)} ({obj.get('apiVersion')}) has no schema in "
                    f"kubernetes-validate for {version}: unknown kind, not checked",
                )
        if len(passed) == len(versions):
            print(
                f"  ok   {kn(obj):45} kubernetes-validate --strict, "
                f"Kubernetes {' and '.join(versions)}"
            )


def validate_rabbitmq(docs: list[dict], versions: list[str], report: Report) -> None:
    schema = json.loads((SCHEMA_DIR / RABBIT_SCHEMA).read_text())
    registry = Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", k8s_definitions_resource(versions[-1])
    )
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    for obj in docs:
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
        for e in errors:
            path = ".".join(str(p) for p in e.path)
            report.check(
                False,
                f"{kn(obj)} invalid against {SCHEMA_DIR.name}/rabbitmqcluster-v1beta1"
                f".schema.json: {path}: {e.message}",
            )
        if not errors:
            report.check(True, f"{kn(obj)} valid against the hand-written RabbitmqCluster schema")
            print(f"  ok   {kn(obj):45} hand-written schema deploy/schemas/{RABBIT_SCHEMA}")


def env_list(container: dict) -> list[dict]:
    return container.get("env") or []


def contract(overlay: str, docs: list[dict], report: Report) -> None:
    exp = EXPECT[overlay]
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in docs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    c = report.check

    c(
        "Secret" not in by_kind,
        "no Secret manifest (secrets are created by hand or by the operators)",
    )

    namespaces = list(by_kind.get("Namespace", {}))
    c(len(namespaces) == 1, f"the overlay declares one Namespace ({namespaces})")
    ns = namespaces[0] if namespaces else None
    wrong_ns = [
        kn(o) for o in docs if o["kind"] != "Namespace" and o["metadata"].get("namespace") != ns
    ]
    c(
        not wrong_ns,
        f"every object is in namespace {ns} (not: {wrong_ns})"
        if wrong_ns
        else f"every object is in namespace {ns}",
    )

    configmaps = set(by_kind.get("ConfigMap", {}))
    rabbit = by_kind.get("RabbitmqCluster", {})
    clusters = by_kind.get("Cluster", {})
    secrets_made = {f"{name}-default-user": {"username", "password"} for name in rabbit}
    secrets_made.update({f"{name}-app": {"username", "password"} for name in clusters})

    # RabbitMQ
    c(list(rabbit) == ["veta-rabbitmq"], f"one RabbitmqCluster veta-rabbitmq ({list(rabbit)})")
    for r in rabbit.values():
        spec = r["spec"]
        c(
            spec.get("replicas") == exp["rabbitmq"],
            f"{kn(r)} has {exp['rabbitmq']} replica(s) ({spec.get('replicas')})",
        )
        c(
            re.search(
                r"^\s*default_queue_type\s*=\s*quorum\s*$",
                spec.get("rabbitmq", {}).get("additionalConfig", ""),
                re.M,
            )
            is not None,
            f"{kn(r)} makes durable queues quorum queues (default_queue_type)",
        )
        lim = spec.get("resources", {}).get("limits", {})
        req = spec.get("resources", {}).get("requests", {})
        c(
            bool(lim.get("memory")) and lim.get("memory") == req.get("memory"),
            f"{kn(r)} memory request = limit "
            "(the operator derives RabbitMQ's memory watermark from it)",
        )

    # PostgreSQL
    c(
        sorted(clusters) == sorted(f"veta-{s}-db" for s in SERVICES),
        f"one CloudNativePG Cluster per service database ({sorted(clusters)})",
    )
    for s in SERVICES:
        cl = clusters.get(f"veta-{s}-db")
        if not cl:
            continue
        initdb = cl["spec"].get("bootstrap", {}).get("initdb", {})
        c(
            initdb.get("database") == f"veta_{s}" and initdb.get("owner") == f"veta_{s}",
            f"{kn(cl)} bootstraps database veta_{s} owned by veta_{s}",
        )
        c(
            cl["spec"].get("instances") == exp["instances"],
            f"{kn(cl)} has {exp['instances']} instance(s) ({cl['spec'].get('instances')})",
        )

    # Deployments, their containers and Services
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    c(
        sorted(deployments) == sorted(DEPLOYMENTS),
        f"Deployments {sorted(DEPLOYMENTS)} ({sorted(deployments)})",
    )
    for name, d in deployments.items():
        spec = d["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        selector = spec["selector"].get("matchLabels", {})
        component = name.removeprefix("veta-")
        c(
            all(labels.get(k) == v for k, v in selector.items()) and bool(selector),
            f"{name}: selector matches the pod labels",
        )
        c(
            (spec.get("replicas") or 0) >= exp["replicas"],
            f"{name}: at least {exp['replicas']} replica(s) ({spec.get('replicas')})",
        )
        psc = pod.get("securityContext", {})
        c(
            psc.get("runAsNonRoot") is True and (psc.get("runAsUser") or 0) > 0,
            f"{name}: pod runs as non-root (runAsNonRoot, runAsUser {psc.get('runAsUser')})",
        )
        c(
            psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            f"{name}: seccomp RuntimeDefault",
        )
        c(
            pod.get("automountServiceAccountToken") is False,
            f"{name}: no service account token mounted",
        )
        containers = pod.get("containers", [])
        c(len(containers) == 1, f"{name}: one container")
        main = containers[0] if containers else {}
        c(
            main.get("args") == ["run", component],
            f"{name}: runs `veta run {component}` ({main.get('args')})",
        )
        ports = {p.get("name"): p.get("containerPort") for p in main.get("ports", [])}
        c(ports.get("http") == 8000, f"{name}: container port http = 8000")
        rp = main.get("readinessProbe", {}).get("httpGet", {})
        lp = main.get("livenessProbe", {}).get("httpGet", {})
        c(
            rp.get("path") == "/health/ready" and rp.get("port") in ("http", 8000),
            f"{name}: readiness probe GET /health/ready",
        )
        c(
            lp.get("path") == "/health/live" and lp.get("port") in ("http", 8000),
            f"{name}: liveness probe GET /health/live",
        )
        for ct in containers + pod.get("initContainers", []):
            where = f"{name}/{ct['name']}"
            res = ct.get("resources", {})
            c(
                all(
                    res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")
                ),
                f"{where}: cpu and memory requests and limits",
            )
            sc = ct.get("securityContext", {})
            c(
                sc.get("readOnlyRootFilesystem") is True
                and sc.get("allowPrivilegeEscalation") is False
                and "ALL" in sc.get("capabilities", {}).get("drop", []),
                f"{where}: read-only root filesystem, no privilege escalation, "
                "all capabilities dropped",
            )
            check_env(where, ct, configmaps, secrets_made, report)
            c(
                ct.get("image", "").split(":")[0] == main.get("image", "").split(":")[0]
                and bool(ct.get("image")),
                f"{where}: uses the Veta image ({ct.get('image')})",
            )
        names = [e["name"] for e in env_list(main)]
        c("VETA_AMQP_URI" in names, f"{name}: VETA_AMQP_URI set")
        if component in SERVICES:
            c(f"VETA_{component.upper()}_DATABASE_URL" in names, f"{name}: its database URL set")
            others = [
                n
                for n in names
                if n.endswith("_DATABASE_URL") and n != f"VETA_{component.upper()}_DATABASE_URL"
            ]
            c(not others, f"{name}: no other service's database URL ({others})")
            inits = pod.get("initContainers", [])
            c(
                any(i.get("args") == ["migrate", component] for i in inits),
                f"{name}: init container runs `veta migrate {component}`",
            )
        if component == "payouts":
            c(
                {"VETA_STRIPE_API_KEY", "VETA_STRIPE_WEBHOOK_SECRET"} <= set(names),
                f"{name}: Stripe secrets set",
            )
        if component == "gateway":
            c("VETA_JWT_SECRET" in names, f"{name}: VETA_JWT_SECRET set")
        svc = services.get(name)
        c(svc is not None, f"{name}: has a Service")
        if svc:
            sel = svc["spec"].get("selector", {})
            c(
                bool(sel) and all(labels.get(k) == v for k, v in sel.items()),
                f"Service/{name} selects the pods",
            )
            sports = {
                p.get("name"): (p.get("port"), p.get("targetPort"))
                for p in svc["spec"].get("ports", [])
            }
            c(
                sports.get("http") in ((8000, "http"), (8000, 8000)),
                f"Service/{name} port http 8000 -> http",
            )
        if component == "gateway":
            continue

    # HPAs
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
    c(targets == HPA_TARGETS, f"HPAs for {sorted(HPA_TARGETS)} ({sorted(targets)})")
    for h in hpas.values():
        ref = h["spec"]["scaleTargetRef"]
        c(h["apiVersion"] == "autoscaling/v2", f"{kn(h)}: autoscaling/v2")
        c(
            ref.get("kind") == "Deployment" and ref.get("name") in deployments,
            f"{kn(h)}: targets an existing Deployment",
        )
        lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
        c(
            exp["replicas"] <= lo <= hi,
            f"{kn(h)}: {exp['replicas']} <= minReplicas {lo} <= maxReplicas {hi}",
        )
        dep = deployments.get(ref.get("name"), {})
        c(
            all(
                ct.get("resources", {}).get("requests", {}).get("cpu")
                for ct in dep.get("spec", {})
                .get("template", {})
                .get("spec", {})
                .get("containers", [])
            ),
            f"{kn(h)}: its Deployment requests CPU (needed for a CPU utilization target)",
        )

    # Ingress
    ingresses = by_kind.get("Ingress", {})
    c(len(ingresses) == 1, f"one Ingress ({list(ingresses)})")
    for ing in ingresses.values():
        rules = ing["spec"].get("rules", [])
        c(all(r.get("host") for r in rules) and bool(rules), f"{kn(ing)}: every rule has a host")
        backends = {}
        for r in rules:
            for p in r.get("http", {}).get("paths", []):
                svc = p["backend"]["service"]
                backends[p["path"]] = svc["name"]
                target = services.get(svc["name"])
                port = svc.get("port", {})
                c(
                    target is not None
                    and any(
                        sp.get("name") == port.get("name") or sp.get("port") == port.get("number")
                        for sp in target["spec"]["ports"]
                    ),
                    f"{kn(ing)}: {p['path']} -> existing Service {svc['name']} port {port}",
                )
        c(backends.get("/graphql") == "veta-gateway", f"{kn(ing)}: /graphql goes to the gateway")
        c(
            not [p for p in backends if p.startswith(("/health", "/metrics")) or p == "/"],
            f"{kn(ing)}: neither /health nor /metrics is published",
        )
        c(
            backends.get("/stripe/webhooks") == "veta-payouts",
            f"{kn(ing)}: /stripe/webhooks goes to payouts",
        )
        if exp["tls"]:
            tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
            c(
                bool(tls_hosts) and all(r.get("host") in tls_hosts for r in rules),
                f"{kn(ing)}: TLS for every host",
            )

    # migration Job
    jobs = by_kind.get("Job", {})
    job = jobs.get("veta-migrate")
    c(job is not None, "Job veta-migrate exists")
    if job:
        pod = job["spec"]["template"]["spec"]
        ct = pod["containers"][0]
        c(ct.get("args") == ["migrate"], "Job/veta-migrate runs `veta migrate`")
        job_env = {e["name"] for e in env_list(ct)}
        c(
            {f"VETA_{s.upper()}_DATABASE_URL" for s in SERVICES} <= job_env,
            "Job/veta-migrate has all four database URLs",
        )
        c(
            pod.get("securityContext", {}).get("runAsNonRoot") is True,
            "Job/veta-migrate runs as non-root",
        )
        c(
            ct.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
            "Job/veta-migrate: read-only root filesystem",
        )
        check_env("Job/veta-migrate", ct, configmaps, secrets_made, report)

    # images
    images = {
        ct["image"]
        for d in list(deployments.values()) + list(jobs.values())
        for ct in d["spec"]["template"]["spec"].get("containers", [])
        + d["spec"]["template"]["spec"].get("initContainers", [])
    }
    c(len(images) == 1, f"one Veta image everywhere ({sorted(images)})")
    if overlay == "prod":
        tags = {i.rsplit(":", 1)[-1] if ":" in i.split("/")[-1] else "" for i in images}
        c(
            all(t and t not in {"latest", "local", "dev"} for t in tags),
            f"prod image has a release tag ({sorted(images)})",
        )

    # PodDisruptionBudgets
    pdbs = by_kind.get("PodDisruptionBudget", {})
    if exp["pdb"]:
        for pdb_target in [*DEPLOYMENTS, "veta-rabbitmq"]:
            match = [
                p
                for p in pdbs.values()
                if p["spec"]
                .get("selector", {})
                .get("matchLabels", {})
                .get("app.kubernetes.io/name")
                == pdb_target
            ]
            c(len(match) == 1, f"PodDisruptionBudget for {pdb_target}")
        for p in pdbs.values():
            c(
                ("maxUnavailable" in p["spec"]) != ("minAvailable" in p["spec"]),
                f"{kn(p)}: exactly one of maxUnavailable/minAvailable",
            )
    else:
        c(
            not pdbs,
            f"no PodDisruptionBudget in {overlay} (single replicas would block node drains)",
        )


def check_env(
    where: str, ct: dict, configmaps: set[str], secrets_made: dict[str, set[str]], report: Report
) -> None:
    c = report.check
    for ef in ct.get("envFrom", []):
        if "configMapRef" in ef:
            c(
                ef["configMapRef"]["name"] in configmaps,
                f"{where}: envFrom ConfigMap {ef['configMapRef']['name']} exists",
            )
        if "secretRef" in ef:
            c(
                False,
                f"{where}: envFrom secretRef {ef['secretRef']['name']} "
                "(use secretKeyRef, key by key)",
            )
    defined: set[str] = set()
    for e in env_list(ct):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            name, key = ref["name"], ref["key"]
            if name == "veta-secrets":
                c(
                    key in VETA_SECRET_KEYS,
                    f"{where}: {e['name']} <- veta-secrets/{key} (a documented key)",
                )
            else:
                c(
                    key in secrets_made.get(name, set()),
                    f"{where}: {e['name']} <- {name}/{key}, "
                    "a Secret an operator generates for an object here",
                )
        for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value") or ""):
            c(var in defined, f"{where}: {e['name']} uses $({var}), defined before it")
        defined.add(e["name"])
        c(
            "value" not in e or not re.search(r"(sk_live|sk_test|whsec_)", e.get("value") or ""),
            f"{where}: {e['name']} holds no literal Stripe secret",
        )


def load(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("overlay", choices=sorted(EXPECT))
    ap.add_argument("rendered", type=Path)
    ap.add_argument("cnpg_out", type=Path)
    ap.add_argument("--k8s-versions", default="1.29.0,1.37.0")
    args = ap.parse_args(list(argv) if argv is not None else None)
    versions = [v.strip() for v in args.k8s_versions.split(",") if v.strip()]

    docs = load(args.rendered)
    report = Report()
    builtin, rabbit, cnpg, other = [], [], [], []
    for obj in docs:
        gv, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        if gv == "rabbitmq.com/v1beta1" and kind == "RabbitmqCluster":
            rabbit.append(obj)
        elif gv == "postgresql.cnpg.io/v1" and kind == "Cluster":
            cnpg.append(obj)
        elif "." in gv.split("/")[0] and not gv.split("/")[0].endswith(".k8s.io"):
            other.append(obj)
        else:
            builtin.append(obj)
    kinds: dict[str, int] = {}
    for obj in docs:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    print(
        f"[{args.overlay}] {len(docs)} objects: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    for obj in other:
        report.check(
            False, f"{kn(obj)} ({obj['apiVersion']}): no validator for this kind, not checked"
        )

    print(
        f"[{args.overlay}] built-in kinds: {len(builtin)} objects "
        f"x Kubernetes {', '.join(versions)} "
        f"with kubernetes-validate --strict (unknown fields are errors)"
    )
    validate_builtin(builtin, versions, report)
    print(
        f"[{args.overlay}] !!! RabbitmqCluster: {len(rabbit)} object(s) checked against "
        f"the HAND-WRITTEN schema deploy/schemas/{RABBIT_SCHEMA}, NOT the operator's CRD: "
        "no registry package reachable here ships it. Fields Veta sets are checked in depth; "
        "operator-side validation is not."
    )
    validate_rabbitmq(rabbit, versions, report)
    before = len(report.ok)
    contract(args.overlay, docs, report)
    print(
        f"[{args.overlay}] Veta contract (probes, resources, security contexts, env and "
        "secret references, Services, HPAs, Ingress, migration Job, operators' objects, "
        f"{args.overlay} expectations): "
        f"{len(report.ok) - before} checks passed"
    )
    args.cnpg_out.write_text(
        json.dumps([{"source": args.overlay, "object": o} for o in cnpg], indent=1)
    )
    print(
        f"[{args.overlay}] CloudNativePG Cluster: {len(cnpg)} object(s) "
        "handed to the CRD-schema check (node)"
    )
    print(f"[{args.overlay}] {len(report.ok)} checks passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
