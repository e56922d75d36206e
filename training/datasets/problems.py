"""What is wrong with a dataset, in words its owner can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, said so that its owner can fix it."""

    message: str
    file: str = ""
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}

    def __str__(self) -> str:
        where = self.file + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}" if where else self.message


class DatasetError(Exception):
    """The dataset cannot be used; ``problems`` says why (at least one)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:3]))
        self.problems = problems


def dataset_error(message: str, file: str = "", line: int | None = None) -> DatasetError:
    return DatasetError([Problem(message, file, line)])
