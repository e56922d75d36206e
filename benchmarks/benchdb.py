"""A throwaway PostgreSQL database for one benchmark run, and Django set up on it.

DATABASE_URL names the server (default: the development machine's 127.0.0.1:5432);
``throwaway_database()`` creates ``hubsite_bench_<random>`` there and drops it at
the end. Nothing else on that server is touched.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The URL of database ``name`` on the server SERVER_URL names."""
    return urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create ``hubsite_bench_<random>`` on the server and yield its URL; on the way
    out (error or not) close Django's connections, if Django is set up, and drop the
    database WITH (FORCE)."""
    name = f"hubsite_bench_{secrets.token_hex(4)}"
    _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        try:
            _close_django_connections()
        finally:
            _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(url: str, *, debug: bool | None = False, **environ: str) -> None:
    """Point Django at database ``url``, set ``environ`` in the environment, and run
    ``django.setup()``. ``debug=False`` sets DEBUG=0, as in production (no per-query
    logging); ``None`` leaves DEBUG as the environment has it. Safe to call in a
    spawned child process: it needs only its arguments."""
    os.environ["DATABASE_URL"] = url
    if debug is not None:
        os.environ["DEBUG"] = "1" if debug else "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
    os.environ.update(environ)
    import django

    django.setup()


def worker_environ(scratch: Path) -> dict[str, str]:
    """Settings for a benchmark that runs real workers: the machine's Redis under a
    fresh namespace, local files under ``scratch`` instead of S3."""
    return {
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DRAMATIQ_NAMESPACE": f"hubsite-bench-{secrets.token_hex(4)}",
        "HUBSITE_DATA_DIR": str(scratch / "data"),
        "S3_BUCKET": "",
    }


def _admin_sql(statement: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as connection:
        connection.execute(statement)


def _close_django_connections() -> None:
    if "django.apps" not in sys.modules:
        return
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()
