"""Errors that the CLI turns into one clear line (never a traceback)."""

from __future__ import annotations


class SenseCFError(Exception):
    """Base class of every error sensecf reports to the user."""


class DataError(SenseCFError):
    """Bad input data; names the file, participant, row and/or column at fault."""

    def __init__(self, message: str, *, file: str | None = None, participant: str | None = None,
                 row: object | None = None, column: str | None = None):
        self.file, self.participant, self.row, self.column = file, participant, row, column
        where = [f"{k} {v}" for k, v in (("file", file), ("participant", participant),
                                         ("row", row), ("column", column)) if v is not None]
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class ConfigError(SenseCFError):
    """A bad option, method name, backend spec or config file field."""
