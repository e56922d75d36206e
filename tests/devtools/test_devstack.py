"""The one-machine stack (devtools/devstack.py) survives its workers.

The supervisor is tested on real small processes; one test runs the README's
``python -m devtools.devstack run`` for real, SIGKILLs its training worker, and
checks the site keeps serving with a new worker, then that SIGTERM leaves no
process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings

from devtools.devstack import Stack, free_port, free_ports

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: state, parent pid, ..."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for path in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(path.name))
        if fields is not None and fields[1] == str(pid):
            found.append(int(path.name))
    return found


def descendants(pid: int) -> set[int]:
    found = set(children(pid))
    for child in list(found):
        found |= descendants(child)
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def crash_and_restart(running: Stack, name: str) -> None:
    crashed = running.service(name).process
    crashed.kill()
    supervise_until(running, lambda: running.service(name).process is not crashed)


def supervise_until(running: Stack, condition: Callable[[], bool], *, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert running.check() is None, "an essential process exited"
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        time.sleep(0.05)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(pid_file=tmp_path / "pids.json", delay_first=0.2, delay_max=0.8, stable_after=30)
    yield stack
    stack.close()


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # raises if something holds it


def test_it_restarts_a_crashed_restartable_process_and_logs_it(
    running: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "worker.log"
    first = running.spawn("worker", SLEEPER, log=log, restartable=True)

    os.kill(first.pid, signal.SIGKILL)
    supervise_until(running, lambda: running.service("worker").process.pid != first.pid)

    second = running.service("worker").process
    assert is_running(second.pid)
    assert json.loads((tmp_path / "pids.json").read_text()) == {"worker": second.pid}
    for text in (capsys.readouterr().err, log.read_text()):
        assert f"worker (pid {first.pid}) exited with -9; restart 1 in 0.2 s" in text
        assert f"worker restarted as pid {second.pid}" in text


def test_its_backoff_doubles_up_to_the_maximum(running: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    running.spawn("worker", SLEEPER, restartable=True)
    for _ in range(4):
        crash_and_restart(running, "worker")

    announced = [line.split("; ")[1] for line in capsys.readouterr().err.splitlines() if "exited with" in line]
    assert announced == ["restart 1 in 0.2 s", "restart 2 in 0.4 s", "restart 3 in 0.8 s", "restart 4 in 0.8 s"]


def test_its_backoff_starts_over_after_a_stable_run(tmp_path: Path) -> None:
    running = Stack(delay_first=0.2, delay_max=5, stable_after=0.5)
    try:
        running.spawn("worker", SLEEPER, restartable=True)
        for _ in range(2):  # first delay 0.2, next 0.4
            crash_and_restart(running, "worker")
        assert running.service("worker").next_delay == pytest.approx(0.8)
        time.sleep(0.6)  # up longer than stable_after
        running.service("worker").process.kill()
        supervise_until(running, lambda: running.service("worker").restart_at is not None)
        assert running.service("worker").next_delay == pytest.approx(0.4)  # 0.2 now, then 0.4
    finally:
        running.close()


def test_an_essential_process_that_exits_ends_the_watch(running: Stack) -> None:
    running.spawn("worker", SLEEPER, restartable=True)
    web = running.spawn("web", [sys.executable, "-c", "raise SystemExit(3)"])
    web.wait()

    stopped = running.supervise(interval=0.05)

    assert (stopped.name, stopped.process.returncode) == ("web", 3)
    assert running.service("worker").restarts == 0


def test_a_crash_stops_what_the_process_left_in_its_group(running: Stack, tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    parent = running.spawn(
        "worker",
        [
            sys.executable,
            "-c",
            "import pathlib, subprocess, sys, time\n"
            f"child = subprocess.Popen({SLEEPER!r})\n"
            f"pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))\n"
            "time.sleep(120)\n",
        ],
        restartable=True,
    )
    wait_until(lambda: child_pid_file.exists() and child_pid_file.read_text() != "", timeout=10, what="the child")
    child = int(child_pid_file.read_text())

    parent.kill()
    supervise_until(running, lambda: running.service("worker").restart_at is not None)

    wait_until(lambda: not is_running(child), timeout=10, what="the orphaned child to stop")


def test_close_stops_restarted_processes_too(tmp_path: Path) -> None:
    running = Stack(pid_file=tmp_path / "pids.json", delay_first=0.1)
    first = running.spawn("worker", SLEEPER, restartable=True)
    other = running.spawn("web", SLEEPER)
    first.kill()
    supervise_until(running, lambda: running.service("worker").process is not first)
    restarted = running.service("worker").process

    running.close()

    assert restarted.returncode is not None
    assert other.returncode is not None
    assert not (tmp_path / "pids.json").exists()


# -- the README's run command, for real ------------------------------------------


@pytest.fixture
def throwaway_database_url() -> Iterator[str]:
    db = settings.DATABASES["default"]
    server = f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/postgres"
    name = f"hubsite_devstack_{os.getpid()}_{free_port()}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback server
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def train_worker(stack_pid: int) -> int | None:
    """The pid of the training worker's Dramatiq main process (a child of the stack)."""
    for pid in children(stack_pid):
        if "--queues train.cpu" in command_line(pid) and is_running(pid):
            return pid
    return None


def test_the_run_command_restarts_a_killed_training_worker_and_keeps_serving(
    tmp_path: Path, throwaway_database_url: str
) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "S3_")) and key not in {"SITE_URL", "HUBSITE_HOST"}
    }
    env.update(
        DATABASE_URL=throwaway_database_url,
        REDIS_URL=settings.REDIS_URL,
        DRAMATIQ_NAMESPACE=f"hubsite-devstack-test-{port}",
        HUBSITE_PORT=str(port),
        HUBSITE_DATA_DIR=str(tmp_path / "data"),
    )
    stderr = tmp_path / "stderr.txt"
    with open(tmp_path / "stdout.txt", "wb") as out, open(stderr, "wb") as err:
        site = subprocess.Popen(
            [sys.executable, "-m", "devtools.devstack", "run"],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    seen: set[int] = set()
    try:

        def site_is_up() -> bool:
            assert site.poll() is None, f"the stack exited: {stderr.read_text()}"
            return site_answers(url)

        wait_until(site_is_up, timeout=240, what="the site")
        worker = train_worker(site.pid)
        assert worker is not None
        seen |= descendants(site.pid)

        os.kill(worker, signal.SIGKILL)

        def worker_is_back() -> bool:
            assert site.poll() is None, f"the stack exited: {stderr.read_text()}"
            restarted = train_worker(site.pid)
            return restarted is not None and restarted != worker

        wait_until(worker_is_back, timeout=60, what="a new training worker")
        restarted = train_worker(site.pid)
        assert restarted is not None
        assert site_answers(url)
        assert f"worker-train-cpu (pid {worker}) exited with -9; restart 1 in 1 s" in stderr.read_text()
        worker_log = (tmp_path / "data" / "logs" / "worker-train-cpu.log").read_text()
        assert f"worker-train-cpu restarted as pid {restarted}" in worker_log
        pids = json.loads((tmp_path / "data" / "pids.json").read_text())
        assert pids["worker-train-cpu"] == restarted
        seen |= descendants(site.pid)

        site.send_signal(signal.SIGTERM)
        assert site.wait(timeout=60) == 0
        wait_until(lambda: not any(is_running(pid) for pid in seen), timeout=15, what="every process to stop")
    finally:
        if site.poll() is None:
            site.send_signal(signal.SIGTERM)
            try:
                site.wait(timeout=30)
            except subprocess.TimeoutExpired:
                site.kill()
        for pid in seen:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        broker = redis.Redis.from_url(settings.REDIS_URL)
        for key in broker.scan_iter(f"{env['DRAMATIQ_NAMESPACE']}*"):
            broker.delete(key)
