"""A throwaway PostgreSQL database for one benchmark run, Django set up on it, and
the code tree the benchmark measures.

DATABASE_URL names the server (default: the development machine's 127.0.0.1:5432);
``throwaway_database()`` creates ``hubsite_bench_<random>`` there and drops it at
the end. Nothing else on that server is touched.

``--code PATH`` (``add_code_argument``, ``use_code``) runs a benchmark from this
tree against the application code of another checkout, so one script can time an
old commit and a new one side by side (``benchmarks/side_by_side.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
APPLICATION_PACKAGES = ("hubsite", "training", "billing")
# Where the code under test keeps the tests' training fixtures (a ready synthetic
# dataset, a model, a funded account). If they move, put the new module first and
# keep the old one, so these scripts still run against an older checkout.
TRAINING_FIXTURES = ("tests.factories", "tests.training_fixtures")  # the new layout's, then 38336bc's
PRESENCE_MODULES = ("training.presence", "training.engine.presence")


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


def add_code_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--code",
        type=Path,
        default=BASE_DIR,
        help="checkout whose application code (hubsite, training, billing, tests' fixtures) is measured; "
        "workers and servers run there too (default: this checkout)",
    )


def use_code(code: Path) -> Path:
    """Make ``code`` the tree the application is imported from, here and in every
    subprocess (they get PYTHONPATH and should run with ``cwd=code``). It must come
    before the first application import: the shared virtualenv's editable install
    would otherwise supply its own checkout."""
    code = code.resolve()
    if not (code / "hubsite" / "settings.py").is_file():
        raise SystemExit(f"--code {code}: not a hubsite checkout (no hubsite/settings.py)")
    imported = [name for name in APPLICATION_PACKAGES if name in sys.modules]
    if imported:
        raise SystemExit(f"use_code() must run before the application is imported; already imported: {imported}")
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
    return code


def imported_from(code: Path) -> str:
    """Check that the application packages were imported from ``code``; one line
    naming where ``training`` came from. Raises SystemExit when any came from elsewhere."""
    for name in (*APPLICATION_PACKAGES, "tests"):
        module = importlib.import_module(name)
        origin = Path(module.__file__ or "").resolve()
        if not origin.is_relative_to(code):
            raise SystemExit(f"{name} was imported from {origin}, not from the code under test {code}")
    return f"code under test: {code} (training from {sys.modules['training'].__file__})"


def training_fixtures() -> ModuleType:
    """The test factories of the code under test (wherever its layout keeps them)."""
    return _first_module(TRAINING_FIXTURES)


def fund_dollars(fixtures: ModuleType, user: Any, dollars: int) -> None:
    """Credit ``user`` by a staff adjustment, through whichever factory signature the
    code under test has (38336bc's ``fund(user, dollars=)``, or micro-dollars now)."""
    if fixtures.__name__ == "tests.factories":
        fixtures.fund(user, dollars * 1_000_000, as_adjustment=True)
    else:
        fixtures.fund(user, dollars=dollars)


def presence_module() -> ModuleType:
    """The worker-presence registry of the code under test."""
    return _first_module(PRESENCE_MODULES)


def _first_module(names: tuple[str, ...]) -> ModuleType:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not error.name or not name.startswith(error.name):
                raise  # the module exists but something it imports does not
    raise SystemExit(f"none of {names} in the code under test: add the new home to benchmarks/benchdb.py")


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
