"""The money functions' source: one file per PostgreSQL function in this folder, named
after the function, holding its current definition (``CREATE OR REPLACE FUNCTION``).

Migrations are history, so each one embeds the text it applies and never reads these
files: on a fresh database an old migration must apply its own version, not today's.
The files are where a function is read and changed; ``tests/billing/test_sql.py``
checks that the migrated database has exactly their definitions, and
``manage.py billing_sql_migration`` writes the migration that applies an edited file
(docs/billing.md, "How to change a money function").
"""

from __future__ import annotations

import difflib
from pathlib import Path

from django.db import connection, transaction

SQL_DIR = Path(__file__).resolve().parent
FUNCTION_PREFIX = "billing_"


def source_files() -> dict[str, Path]:
    """Each function's file, by function name."""
    return {path.stem: path for path in sorted(SQL_DIR.glob("*.sql"))}


def database_functions() -> dict[str, str]:
    """The billing functions in the database, overloads included: the definition
    PostgreSQL prints (``pg_get_functiondef``) by signature, ``name(argument types)``."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
                 FROM pg_proc p
                WHERE p.pronamespace = current_schema()::regnamespace
                  AND p.prokind IN ('f', 'p')
                  AND starts_with(p.proname, %s)""",
            [FUNCTION_PREFIX],
        )
        return dict(cursor.fetchall())


def functions_with(path: Path) -> dict[str, str]:
    """The billing functions as they would be with ``path`` run in place of the function
    it is named after: in a transaction that is rolled back, every overload of that
    function is dropped, then the file runs. Comparing definitions PostgreSQL prints
    ignores how the file lays out what the body does not hold; the body counts to the
    last space."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            for signature in database_functions():
                if signature.partition("(")[0] == path.stem:
                    cursor.execute(f"DROP FUNCTION {signature}")
            cursor.execute(path.read_text())
        functions = database_functions()
        transaction.set_rollback(True)
    return functions


def differences(path: Path) -> list[str]:
    """What running ``path`` would change in the database's billing functions: a unified
    diff per signature it changes, adds or removes (trailing spaces shown as ``·``);
    empty when the file holds exactly the definition the database has."""
    before = database_functions()
    after = functions_with(path)
    return [
        "".join(
            difflib.unified_diff(
                _lines(before.get(signature)),
                _lines(after.get(signature)),
                f"the database: {signature}",
                f"{path.name}: {signature}",
            )
        )
        for signature in sorted(before.keys() | after.keys())
        if before.get(signature) != after.get(signature)
    ]


def _lines(definition: str | None) -> list[str]:
    if definition is None:
        return []
    return [f"{line.rstrip()}{'·' * (len(line) - len(line.rstrip()))}\n" for line in definition.splitlines()]
