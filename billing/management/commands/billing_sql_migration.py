"""Write the migration that applies edited money functions (``billing/sql/<name>.sql``).

    python manage.py billing_sql_migration billing_hold_epoch [more names] [--name what_changed]

The migration embeds each file's text as it is now (migrations never read
``billing/sql``, so an old one keeps applying its own version) and, to reverse it, the
definition the database has now: run it against a database migrated to the latest
migration. A new function is reversed by dropping it. A changed argument list or
return type is refused: write that migration by hand, dropping the old function
first, as ``0006_bounded_epoch_holds.py`` did.
"""

from __future__ import annotations

import ast
from importlib import import_module
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.executor import MigrationExecutor

from billing import sql

MIGRATIONS_DIR = Path(str(import_module("billing.migrations").__file__)).parent

MIGRATION = '''"""{summary}

Written by manage.py billing_sql_migration: the text of each file as it was then, and
the definition it replaced (to reverse). Migrations never read billing/sql.
"""

from django.db import migrations

{constants}
class Migration(migrations.Migration):
    dependencies = [("billing", "{dependency}")]

    operations = [
{operations}    ]
'''


class Command(BaseCommand):
    help = "Write a billing migration that applies the edited billing/sql files of the named functions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("functions", nargs="+", metavar="function", help="a file name in billing/sql, less .sql")
        parser.add_argument("--name", help="the migration's name after its number (default: the functions' names)")

    def handle(self, *args: Any, functions: list[str], name: str | None, **options: Any) -> None:
        latest = _latest_billing_migration()
        changes = {function: change for function in functions if (change := _change(function)) is not None}
        if not changes:
            self.stdout.write("The database already has these definitions: no migration written.")
            return
        number = (MigrationAutodetector.parse_number(latest) or 0) + 1
        path = MIGRATIONS_DIR / f"{number:04d}_{name or '_'.join(changes)}.py"
        if path.exists():
            raise CommandError(f"{path} exists already")
        path.write_text(migration_source(changes, latest))
        self.stdout.write(f"Wrote {path}: say in its docstring what changed and why, then migrate.")


def migration_source(changes: dict[str, tuple[str, str]], dependency: str) -> str:
    """A billing migration running each function's (forward, reverse) SQL in order."""
    constants = "".join(
        f"{function.upper()} = {_literal(forward)}\n\nPREVIOUS_{function.upper()} = {_literal(reverse)}\n\n"
        for function, (forward, reverse) in changes.items()
    )
    operations = "".join(
        f"        migrations.RunSQL({function.upper()}, PREVIOUS_{function.upper()}),\n" for function in changes
    )
    summary = f"Apply the edited {', '.join(changes)} (billing/sql)."
    return MIGRATION.format(summary=summary, constants=constants, dependency=dependency, operations=operations)


def _latest_billing_migration() -> str:
    """The last billing migration, once the database has every migration applied."""
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    if executor.migration_plan(graph.leaf_nodes()):
        raise CommandError("Run manage.py migrate first: the migration's reverse is read from the database.")
    leaves = graph.leaf_nodes("billing")
    if len(leaves) != 1:
        raise CommandError(f"billing has {len(leaves)} latest migrations; merge them first.")
    return str(leaves[0][1])


def _change(function: str) -> tuple[str, str] | None:
    """The SQL that applies ``function``'s file and the SQL that restores the database's
    definition; None when the database has the file's definition already."""
    path = sql.source_files().get(function)
    if path is None:
        raise CommandError(f"There is no {sql.SQL_DIR / function}.sql.")
    before = sql.database_functions()
    try:
        after = sql.functions_with(path)
    except DatabaseError as error:
        raise CommandError(f"{path.name} does not run: {error}") from error
    if after == before:
        return None
    replaced = {signature for signature in before if signature.partition("(")[0] == function}
    created = {signature for signature in after if signature.partition("(")[0] == function}
    changed = {signature for signature in before.keys() | after.keys() if before.get(signature) != after.get(signature)}
    if changed - replaced - created:
        raise CommandError(f"{path.name} changes other functions too: {', '.join(sorted(changed - created))}.")
    if not replaced and len(created) == 1:
        return path.read_text(), f"DROP FUNCTION {created.pop()};"
    if len(replaced) == 1 and replaced == created and _replaces_in_place(path.read_text()):
        return path.read_text(), before[replaced.pop()]
    raise CommandError(
        f"{path.name} changes the arguments or the result of {', '.join(sorted(replaced)) or function}: write "
        "that migration by hand, dropping the old function before creating the new one (as 0006 did)."
    )


def _replaces_in_place(text: str) -> bool:
    """Whether ``text`` runs on the database as it is (CREATE OR REPLACE refuses a new result type)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(text)
            transaction.set_rollback(True)
    except DatabaseError:
        return False
    return True


def _literal(text: str) -> str:
    """``text`` as a readable triple-quoted Python string; refused when it would not read back."""
    literal = f'"""{text}"""'
    try:
        reads_back = ast.literal_eval(literal) == text
    except SyntaxError:
        reads_back = False
    if not reads_back:
        raise CommandError("A function's text holds a backslash or triple quote; embed it in the migration by hand.")
    return literal
