"""The money functions' source files (billing/sql/*.sql) are what the migrations create:
an edited file without the migration that applies it fails here, and says what to do."""

from __future__ import annotations

import importlib.util
import shutil
from io import StringIO
from pathlib import Path
from types import ModuleType

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from billing import sql
from billing.management.commands import billing_sql_migration

pytestmark = pytest.mark.django_db

FUNCTION_NAMES = sorted(sql.source_files())


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_each_file_is_the_function_the_migrations_create(name: str) -> None:
    path = sql.source_files()[name]
    differences = sql.differences(path)
    assert not differences, (
        f"billing/sql/{path.name} is not the function the migrations create.\n"
        f"If you edited the file, add the migration that applies it: python manage.py billing_sql_migration {name}\n"
        "If a migration changed the function, copy its definition into the file. "
        "Whitespace inside the body counts too (· marks trailing spaces):\n\n" + "\n".join(differences)
    )


def test_every_billing_function_has_a_file_and_every_file_a_function() -> None:
    signatures = sorted(sql.database_functions())
    names = sorted(signature.partition("(")[0] for signature in signatures)
    assert names == FUNCTION_NAMES, (
        f"The database has {signatures}, billing/sql has {FUNCTION_NAMES}: each billing_* function needs exactly one "
        "definition and one file named after it, and each file a migration that creates its function."
    )


def test_an_edited_file_without_its_migration_is_reported(tmp_path: Path) -> None:
    edited = _edited_capture_epoch(tmp_path)

    (difference,) = sql.differences(edited)

    assert "billing_capture_epoch(bigint,text,integer,bigint)" in difference
    assert " BEGIN\n+    PERFORM 1;\n" in difference


def test_a_file_named_after_another_function_is_reported(tmp_path: Path) -> None:
    misnamed = tmp_path / "billing_hold_epoch.sql"
    shutil.copy(sql.source_files()["billing_capture_epoch"], misnamed)

    signatures_changed = [difference.splitlines()[0] for difference in sql.differences(misnamed)]

    assert signatures_changed == ["--- the database: billing_hold_epoch(bigint,text,integer,bigint)"]


def test_the_written_migration_applies_the_edited_file_and_reverses_to_the_migrated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_dir, migrations_dir = tmp_path / "sql", tmp_path / "migrations"
    sql_dir.mkdir()
    migrations_dir.mkdir()
    original = sql.source_files()["billing_capture_epoch"]
    for path in sql.source_files().values():
        shutil.copy(path, sql_dir)
    latest = MigrationLoader(connection).graph.leaf_nodes("billing")[0][1]
    edited = _edited_capture_epoch(sql_dir)
    monkeypatch.setattr(sql, "SQL_DIR", sql_dir)
    monkeypatch.setattr(billing_sql_migration, "MIGRATIONS_DIR", migrations_dir)

    call_command("billing_sql_migration", "billing_expected_epoch_ms", "billing_capture_epoch", stdout=StringIO())

    (written,) = migrations_dir.iterdir()
    assert written.name == f"{int(latest[:4]) + 1:04d}_billing_capture_epoch.py"
    migration = _load(written).Migration
    assert migration.dependencies == [("billing", latest)]
    (operation,) = migration.operations
    assert operation.sql == edited.read_text()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(operation.sql)
            assert not sql.differences(edited)
            cursor.execute(operation.reverse_sql)
        assert not sql.differences(original)
        transaction.set_rollback(True)


def test_no_migration_is_written_when_the_database_has_the_files_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(billing_sql_migration, "MIGRATIONS_DIR", tmp_path)
    out = StringIO()

    call_command("billing_sql_migration", *FUNCTION_NAMES, stdout=out)

    assert "no migration written" in out.getvalue()
    assert not list(tmp_path.iterdir())


def _edited_capture_epoch(folder: Path) -> Path:
    """billing_capture_epoch.sql in ``folder`` with one more statement in its body: an
    edit that a migration must apply."""
    text = sql.source_files()["billing_capture_epoch"].read_text()
    edited = folder / "billing_capture_epoch.sql"
    edited.write_text(text.replace("\nBEGIN\n", "\nBEGIN\n    PERFORM 1;\n", 1))
    assert edited.read_text() != text
    return edited


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
