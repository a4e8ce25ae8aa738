"""Offline checks of deploy/Dockerfile (run by deploy/check.sh in its tools venv).

Parses the file with dockerfile-parse (PyPI) and checks the rules the image must keep:
every instruction known, FROM first, a pinned python:3.11.<patch>-slim base, a builder stage that
builds wheels and a final stage that installs them without compilers, a non-root USER in the final
stage, ENTRYPOINT ["veta"], CMD ["run", "gateway"], EXPOSE 8000, a HEALTHCHECK on /health/live
with python's urllib, and COPY sources that exist in the build context (the repository root).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

KNOWN = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}
BASE = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cc|libpq-dev|python3-dev)\b")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    path = root / "deploy" / "Dockerfile"
    problems: list[str] = []
    checked: list[str] = []

    def check(ok: bool, what: str) -> None:
        (checked if ok else problems).append(what)

    parser = DockerfileParser(path=str(path))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    check(bool(instructions), "the Dockerfile has instructions")
    if not instructions:
        return report(path, checked, problems)

    unknown = sorted({i["instruction"] for i in instructions} - KNOWN)
    check(
        not unknown,
        f"every instruction is known (unknown: {unknown})"
        if unknown
        else "every instruction is a known Dockerfile instruction",
    )
    check(instructions[0]["instruction"] == "FROM", "the first instruction is FROM")

    # split into stages
    stages: list[list[dict]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    check(len(stages) >= 2, f"multi-stage build ({len(stages)} stages)")

    for stage in stages:
        words = stage[0]["value"].split()
        image = words[0]
        check(
            bool(BASE.match(image)),
            f"stage FROM {image} is a pinned python:3.11.<patch>-slim image",
        )
        check("$" not in stage[0]["value"], f"FROM {stage[0]['value']} has no variables")

    builder, final = stages[0], stages[-1]

    def runs(stage: list[dict]) -> str:
        return "\n".join(i["value"] for i in stage if i["instruction"] == "RUN")

    check(
        re.search(r"\bpip wheel\b[^\n]*\s\.(\s|$)", runs(builder)) is not None,
        "the builder stage builds wheels with `pip wheel ... .`",
    )
    check(
        re.search(r"\bpip install\b[^\n]*--no-index", runs(final)) is not None,
        "the final stage installs the wheels with `pip install --no-index`",
    )
    check(
        any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in final),
        "the final stage copies the wheels from the builder (COPY --from=)",
    )
    check(not COMPILERS.search(runs(final)), "the final stage installs no compiler or -dev package")
    check(
        not re.search(r"\b(curl|wget)\b", "\n".join(i["value"] for i in final)),
        "the final stage uses neither curl nor wget",
    )

    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    last_user = users[-1] if users else ""
    name = last_user.split(":")[0]
    check(bool(users), "the final stage sets USER")
    check(
        bool(users) and name not in {"root", "0"},
        f"the final USER ({last_user or 'none'}) is not root",
    )
    check(
        name.isdigit(),
        f"the final USER ({last_user or 'none'}) is numeric (runAsNonRoot can verify it)",
    )

    def exec_form(instruction: str) -> object:
        values = [i["value"] for i in final if i["instruction"] == instruction]
        if not values:
            return None
        try:
            return json.loads(values[-1])
        except ValueError:
            return values[-1]

    check(exec_form("ENTRYPOINT") == ["veta"], 'ENTRYPOINT ["veta"] (exec form)')
    check(exec_form("CMD") == ["run", "gateway"], 'CMD ["run", "gateway"] (exec form)')
    exposed = " ".join(i["value"] for i in final if i["instruction"] == "EXPOSE").split()
    check("8000" in exposed or "8000/tcp" in exposed, "EXPOSE 8000")

    health = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    check(len(health) == 1, "one HEALTHCHECK in the final stage")
    if health:
        h = health[0]
        check(
            "/health/live" in h and "urllib" in h and "python" in h,
            "the HEALTHCHECK asks /health/live with python's urllib",
        )
        # the inline python must at least compile
        m = re.search(r"CMD\s+(\[.*\])\s*$", h, re.S)
        code = None
        if m:
            try:
                argv = json.loads(m.group(1))
                code = argv[argv.index("-c") + 1] if "-c" in argv else None
            except (ValueError, IndexError):
                code = None
        try:
            compile(code or "", "<healthcheck>", "exec")
            check(code is not None, "the HEALTHCHECK's python code compiles")
        except SyntaxError as exc:
            check(False, f"the HEALTHCHECK's python code compiles ({exc})")

    # COPY sources exist in the build context (the repository root)
    for stage in stages:
        for ins in stage:
            if ins["instruction"] not in {"COPY", "ADD"} or "--from=" in ins["value"]:
                continue
            parts = [p for p in ins["value"].split() if not p.startswith("--")]
            for src in parts[:-1]:
                check((root / src).exists(), f"COPY source {src} exists in the build context")

    return report(path, checked, problems)


def report(path: Path, checked: list[str], problems: list[str]) -> int:
    for line in checked:
        print(f"  ok   {line}")
    for line in problems:
        print(f"  FAIL {line}")
    print(f"Dockerfile {path}: {len(checked)} checks passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
