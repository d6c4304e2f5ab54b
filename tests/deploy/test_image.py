"""The container image's essentials, checked from the Dockerfile and the entrypoint.

No container engine runs here, so these read the Dockerfile as text and run the entrypoint with
stand-ins for gunicorn and python on PATH.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import ROOT, config_data, find, pod_spec, render

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker-entrypoint.sh"
# Names that say "this holds a credential". HELM_SHA256 is a public digest, not one of these.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.I)


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    stage = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = args.split(" AS ")[-1].strip() if " AS " in args else args.strip()
        instructions.append(Instruction(stage, keyword, args.strip()))
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())
FINAL_STAGE = [i for i in INSTRUCTIONS if i.keyword == "FROM"][-1].stage


def args_of(keyword: str, stage: str | None = None) -> list[str]:
    return [i.args for i in INSTRUCTIONS if i.keyword == keyword and stage in (None, i.stage)]


def global_args() -> dict[str, str]:
    """ARG defaults, by name (a later stage's ARG of the same name wins, as in a build)."""
    values: dict[str, str] = {}
    for arg in args_of("ARG"):
        name, _, default = arg.partition("=")
        values[name] = default
    return values


class TestDockerfile:
    def test_it_is_multi_stage_with_a_separate_helm_stage(self) -> None:
        stages = [i.stage for i in INSTRUCTIONS if i.keyword == "FROM"]
        assert len(stages) >= 4
        assert {"helm", "vcluster"} <= set(stages)
        assert FINAL_STAGE == "runtime"

    def test_every_base_image_is_an_exact_release(self) -> None:
        values = global_args()
        assert re.fullmatch(r"python:3\.13\.\d+-slim-(bookworm|trixie)", values["PYTHON_IMAGE"])
        assert re.fullmatch(r"golang:1\.\d+\.\d+-(bookworm|trixie)", values["GO_IMAGE"])
        bases = {i.stage: i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"}
        # Go only builds the CLI; everything that runs is on the Python image.
        assert bases.pop("vcluster") == "${GO_IMAGE}"
        assert set(bases.values()) == {"${PYTHON_IMAGE}"}, bases

    def test_helm_is_pinned_and_checksum_verified(self) -> None:
        values = global_args()
        assert values["HELM_VERSION"] == "v4.1.4"
        assert re.fullmatch(r"[0-9a-f]{64}", values["HELM_SHA256"])
        fetch = " ".join(args_of("RUN", "helm"))
        assert "https://get.helm.sh/" in fetch
        assert '"$archive.sha256sum"' in fetch
        # Both the published checksum file and the pinned digest are checked.
        assert 'sha256sum --check --strict "$archive.sha256sum"' in fetch
        assert 'echo "$HELM_SHA256  $archive" | sha256sum --check' in fetch
        assert any("--from=helm" in copy for copy in args_of("COPY", FINAL_STAGE))

    def test_the_vcluster_cli_is_built_from_the_pinned_tag_and_verified(self) -> None:
        version = global_args()["VCLUSTER_VERSION"]
        assert version == "v0.36.1"  # the chart version the backend installs
        runs = " ".join(args_of("RUN", "vcluster"))
        envs = " ".join(args_of("ENV", "vcluster"))
        assert '"github.com/loft-sh/vcluster/cmd/vclusterctl@${VCLUSTER_VERSION}"' in runs
        # The version the CLI reports (and picks the chart by), as upstream's release sets it.
        assert "-X main.version=${VCLUSTER_VERSION#v}" in runs
        # The checksum database stays on, no module is exempted, no other compiler is fetched.
        assert 'test "$(go env GOSUMDB)" != off' in runs
        assert "go env GONOSUMDB GOPRIVATE GOINSECURE GOFLAGS" in runs
        assert "GOTOOLCHAIN=local" in envs
        # The binary records the module it was built from, with its verified hash.
        assert "go version -m /go/bin/vclusterctl" in runs
        assert "github.com/loft-sh/vcluster[[:space:]]+${VCLUSTER_VERSION}[[:space:]]+h1:" in runs
        copies = args_of("COPY", FINAL_STAGE)
        assert "--from=vcluster /usr/local/bin/vcluster /usr/local/bin/vcluster" in copies

    def test_production_points_vcluster_cli_at_the_shipped_binary(self) -> None:
        copies = [c.split()[-1] for c in args_of("COPY", FINAL_STAGE) if "--from=vcluster" in c]
        data = config_data(render("overlays/production"))
        assert [data["VCLUSTER_CLI"]] == copies

    def test_the_runtime_runs_as_a_fixed_non_root_user(self) -> None:
        users = args_of("USER", FINAL_STAGE)
        assert users, "the runtime stage sets no USER"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"
        assert int(uid) >= 1000
        assert gid.isdigit()
        assert int(gid) != 0
        runs = " ".join(args_of("RUN", FINAL_STAGE))
        assert f"useradd --system --uid {uid} " in runs

    def test_the_manifests_run_as_the_images_user(self) -> None:
        uid = int(args_of("USER", FINAL_STAGE)[-1].partition(":")[0])
        web = pod_spec(find(render("base"), "Deployment", "portal-web"))
        assert web["securityContext"]["runAsUser"] == uid

    def test_no_secret_is_baked_into_the_image(self) -> None:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in args_of(keyword):
                for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]:
                    assert not SECRET_NAME.search(name), f"{keyword} {args}"
                assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", args), f"{keyword} {args}"
        # The build-time SECRET_KEY lives only in the collectstatic command's own environment.
        for run in args_of("RUN"):
            if "SECRET_KEY=" in run:
                assert "collectstatic" in run
                assert "not-a-secret" in run

    def test_static_files_are_collected_at_build_time_with_debug_off(self) -> None:
        runs = " ".join(args_of("RUN", FINAL_STAGE))
        assert "DEBUG=false" in runs
        assert "manage.py collectstatic --noinput" in runs

    def test_it_has_a_healthcheck_on_healthz(self) -> None:
        (check,) = args_of("HEALTHCHECK", FINAL_STAGE)
        assert "/healthz" in check
        # The same Host the Kubernetes probes send; ALLOWED_HOSTS must list it.
        assert "'Host': 'localhost'" in check

    def test_the_entrypoint_is_exec_form_and_defaults_to_web(self) -> None:
        (entrypoint,) = args_of("ENTRYPOINT", FINAL_STAGE)
        assert json.loads(entrypoint) == ["docker-entrypoint.sh"]
        (cmd,) = args_of("CMD", FINAL_STAGE)
        assert json.loads(cmd) == ["web"]

    def test_dockerignore_keeps_local_state_out(self) -> None:
        lines = (ROOT / ".dockerignore").read_text().splitlines()
        ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        assert {".git", ".venv", ".tools", "var", ".env", "*.sqlite3", "tests"} <= ignored
        assert "requirements.txt" not in ignored
        assert "docker-entrypoint.sh" not in ignored


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    """PATH with a fake gunicorn and python that print their pid and arguments, then exit."""
    for program in ("gunicorn", "python"):
        fake = tmp_path / program
        fake.write_text('#!/bin/sh\necho "$$ $0 $*"\n')
        fake.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def run_entrypoint(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the entrypoint; return its pid and what the stand-in printed."""
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    return process.pid, out.strip()


class TestEntrypoint:
    def test_it_is_valid_sh(self) -> None:
        subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
        assert "set -eu" in ENTRYPOINT.read_text()

    def test_web_execs_gunicorn_on_port_8000(self, stand_ins: dict[str, str]) -> None:
        pid, out = run_entrypoint(stand_ins, "web")
        printed_pid, program, *argv = out.split()
        # Same pid: the shell replaced itself, so SIGTERM reaches gunicorn directly.
        assert int(printed_pid) == pid
        assert program.endswith("/gunicorn")
        assert argv[0] == "portal.wsgi:application"
        assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000"
        assert "--worker-tmp-dir" in argv

    def test_web_is_the_default(self, stand_ins: dict[str, str]) -> None:
        _, out = run_entrypoint(stand_ins)
        assert "/gunicorn portal.wsgi:application" in out

    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            ("worker", "manage.py runworker"),
            ("cron", "manage.py runcron"),
            ("migrate", "manage.py migrate --noinput"),
            ("manage", "manage.py rqsuspend"),
        ],
    )
    def test_other_processes_are_execed_too(
        self, stand_ins: dict[str, str], command: str, expected: str
    ) -> None:
        extra = ["rqsuspend"] if command == "manage" else []
        pid, out = run_entrypoint(stand_ins, command, *extra)
        printed_pid, _, rest = out.partition(" ")
        assert int(printed_pid) == pid
        assert rest.endswith(expected)

    def test_wait_for_migrations_returns_once_the_check_passes(
        self, stand_ins: dict[str, str]
    ) -> None:
        _, out = run_entrypoint(stand_ins, "wait-for-migrations")
        assert out == ""
