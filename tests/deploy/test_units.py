"""deploy/'s systemd units, checked where systemd-analyze is missing too.

`deploy/verify-units` (run by .ci/run where systemd-analyze exists) checks the
syntax; these tests check what the units mean for hubsite: the venv's programs, the
environment file, the queues, the stop timeouts, the hardening. The training
template's command line is run for real through /bin/sh, after systemd's own
substitutions, against a stub Python.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = DEPLOY.parent / "hubsite" / "settings.py"
SERVICES = ["hubsite-web.service", "hubsite-worker-light.service", "hubsite-train@.service"]
VENV = "/opt/hubsite/.venv/bin"
MANAGE = f"{VENV}/python /opt/hubsite/manage.py"
ENV_FILE = "/etc/hubsite/hubsite.env"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of a unit file, each key with all its values in order (systemd allows
    repeated keys), continuation lines joined as systemd joins them."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def environment(unit: Unit) -> dict[str, str]:
    """The unit's own Environment= defaults."""
    values: dict[str, str] = {}
    for line in unit["Service"].get("Environment", []):
        for assignment in line.split():
            name, _, value = assignment.partition("=")
            values[name] = value
    return values


def env_file_names() -> list[str]:
    lines = (DEPLOY / "hubsite.env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def systemd_command_line(exec_start: str, instance: str) -> str:
    """What systemd hands to exec(): specifiers and "$$" resolved (no ${VAR} here)."""
    assert "${" not in exec_start.replace("$${", ""), "this helper does not expand environment variables"
    return exec_start.replace("%i", instance).replace("%%", "%").replace("$$", "$")


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("hubsite-web.service", f"{VENV}/gunicorn hubsite.wsgi "),
        ("hubsite-worker-light.service", f"{MANAGE} rundramatiq "),
        ("hubsite-train@.service", f"exec {MANAGE} rundramatiq "),
    ],
)
def test_each_service_runs_the_venv_as_hubsite_with_the_environment_file(name: str, command: str) -> None:
    service = parse_unit(DEPLOY / name)["Service"]

    [exec_start] = service["ExecStart"]
    assert command in exec_start
    assert service["EnvironmentFile"] == [ENV_FILE]
    assert service["User"] == service["Group"] == ["hubsite"]
    assert service["WorkingDirectory"] == ["/opt/hubsite"]
    assert "HUBSITE_ENV=production" in service["Environment"][0].split()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_restarts_with_limits_and_is_hardened(name: str) -> None:
    unit = parse_unit(DEPLOY / name)
    service = unit["Service"]

    assert service["Restart"] == ["on-failure"]
    assert service["RestartSec"][0].endswith("s")
    # a crash loop leaves the unit failed, for an operator to see, instead of restarting forever
    assert (unit["Unit"]["StartLimitBurst"], unit["Unit"]["StartLimitIntervalSec"]) == (["5"], ["10min"])
    assert service["KillMode"] == ["mixed"]  # SIGTERM to the main process, which stops its workers
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "StateDirectory": "hubsite",
    }.items():
        assert service[key] == [value], key
    data_dir = environment(unit)["HUBSITE_DATA_DIR"]
    assert service["ReadWritePaths"] == [data_dir]
    assert f"HUBSITE_DATA_DIR={data_dir}" in (DEPLOY / "hubsite.env.example").read_text()
    assert unit["Unit"]["PartOf"] == ["hubsite.target"]
    assert unit["Install"]["WantedBy"] == ["hubsite.target"]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|min)", value).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "min" else 1)


@pytest.mark.parametrize("name", ["hubsite-worker-light.service", "hubsite-train@.service"])
def test_systemd_waits_longer_than_dramatiq_lets_running_messages_finish(name: str) -> None:
    service = parse_unit(DEPLOY / name)["Service"]
    shutdown_ms = int(re.search(r"--worker-shutdown-timeout (\d+)", service["ExecStart"][0]).group(1))  # type: ignore[union-attr]

    assert seconds(service["TimeoutStopSec"][0]) > shutdown_ms / 1000


def test_the_web_command_line_is_one_gunicorn_accepts() -> None:
    unit = parse_unit(DEPLOY / "hubsite-web.service")
    [exec_start] = unit["Service"]["ExecStart"]
    defaults = environment(unit)
    args = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], exec_start).split()
    assert args[0] == f"{VENV}/gunicorn"

    checked = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), *args[1:], "--check-config"],
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert checked.returncode == 0, checked.stderr
    assert unit["Service"]["Type"] == ["notify"]  # gunicorn's arbiter tells systemd when it is ready


def test_the_light_worker_consumes_the_default_and_predict_queues() -> None:
    unit = parse_unit(DEPLOY / "hubsite-worker-light.service")
    [exec_start] = unit["Service"]["ExecStart"]
    defaults = environment(unit)

    args = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], exec_start).split()

    assert args[:4] == [f"{VENV}/python", "/opt/hubsite/manage.py", "rundramatiq", "--queues"]
    assert args[4:6] == ["default", "predict"]
    assert args[6:10] == ["--processes", "1", "--threads", "4"]


def run_training_template(instance: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The template's ExecStart for ``instance``, as systemd would run it, with the
    venv's Python replaced by a stub that prints its arguments and CUDA settings."""
    [exec_start] = parse_unit(DEPLOY / "hubsite-train@.service")["Service"]["ExecStart"]
    stub = tmp_path / "python"
    stub.write_text(
        '#!/bin/sh\necho "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES TRAINING_DEVICE=$TRAINING_DEVICE"\necho "$@"\n'
    )
    stub.chmod(0o755)
    command_line = systemd_command_line(exec_start, instance).replace(f"{VENV}/python", str(stub))
    prefix = "/bin/sh -c '"
    assert command_line.startswith(prefix)
    script, _, rest = command_line[len(prefix) :].partition("' ")
    return subprocess.run(
        ["/bin/sh", "-c", script, *rest.split()],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "TRAINING_DEVICE": "3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"},
    )


def test_a_training_instance_consumes_its_types_queue_on_its_gpu(tmp_path: Path) -> None:
    ran = run_training_template("a100-80gb-1", tmp_path)

    assert ran.returncode == 0, ran.stderr
    cuda, args = ran.stdout.splitlines()
    assert cuda == "CUDA_VISIBLE_DEVICES=1 TRAINING_DEVICE=0"  # the environment file cannot override them
    assert args.split() == [
        "/opt/hubsite/manage.py",
        "rundramatiq",
        "--queues",
        "train.a100-80gb",
        "--processes",
        "1",
        "--threads",
        "1",
        "--worker-shutdown-timeout",
        "600000",
    ]


@pytest.mark.parametrize("instance", ["a100", "a100-80gb", "-0", "a100-gpu0"])
def test_a_training_instance_without_a_gpu_index_refuses_to_start(instance: str, tmp_path: Path) -> None:
    ran = run_training_template(instance, tmp_path)

    assert ran.returncode == 2
    assert ran.stdout == ""
    assert f"instance must be <slug>-<GPU index>, not {instance}" in ran.stderr


def test_every_variable_of_the_example_environment_file_is_read_somewhere() -> None:
    settings_source = SETTINGS.read_text()
    units = "".join((DEPLOY / name).read_text() for name in SERVICES)

    unread = [name for name in env_file_names() if f'"{name}"' not in settings_source and name not in units]

    assert unread == []


def test_the_example_environment_file_holds_no_real_secret() -> None:
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "hubsite.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )

    for name in (
        "SECRET_KEY",
        "S3_SECRET_ACCESS_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "EMAIL_HOST_PASSWORD",
    ):
        assert "change-me" in values[name], name
