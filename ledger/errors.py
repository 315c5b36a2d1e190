"""Exceptions that carry their evidence.

Every error names what broke and the value that broke it, so that the CLI can print one
clear line (file, line, field, value) and exit 1 without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class LedgerError(Exception):
    """Base class for every error the engine raises on purpose (CLI exit code 1)."""


@dataclass
class InputProblem:
    """One problem found in an input file.

    file: str, the path as given; line: int, 1-based (0 when not line-specific);
    field: str, dotted path of the offending field ("" for the whole line);
    value: the offending value as read (repr'd in messages); message: what is wrong.
    """

    file: str
    line: int
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        if self.field:
            parts.append(f"field '{self.field}'")
        val = "" if self.value is _NO_VALUE else f" (value: {_show(self.value)})"
        parts.append(self.message + val)
        return ": ".join(parts)


class _NoValue:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<no value>"


_NO_VALUE = _NoValue()
NO_VALUE: object = _NO_VALUE


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class InvalidInputError(LedgerError):
    """The input files hold one or more invalid events; nothing was posted.

    problems: list[InputProblem], in file and line order.
    """

    problems: list[InputProblem] = field(default_factory=list)
    committed: int = 0  # events committed by earlier chunks of a bulk import (0: nothing at all)

    def __str__(self) -> str:
        n = len(self.problems)
        problems = f"{n} problem{'' if n == 1 else 's'} in the input"
        if self.committed:
            head = (f"{problems}; this chunk was not posted ({self.committed} event{'' if self.committed == 1 else 's'} "
                    "of earlier chunks were; import the same files again once fixed: those count as duplicates)")
        else:
            head = f"{problems}; nothing was posted"
        return head + "\n" + "\n".join(f"  {p}" for p in self.problems)


@dataclass
class UnbalancedEntryError(LedgerError):
    """A journal entry's debits and credits differ in some commodity.

    commodity: str; debits, credits: int, in minor units of the commodity.
    """

    description: str
    commodity: str
    debits: int
    credits: int

    def __str__(self) -> str:
        return (
            f"journal entry '{self.description}' does not balance in {self.commodity}: "
            f"debits {self.debits} != credits {self.credits}"
        )


@dataclass
class InternalError(LedgerError):
    """The engine built something its own rules forbid (an entry without lines, say): a bug,
    refused before anything is written. message: what was refused, naming the entry."""

    message: str

    def __str__(self) -> str:
        return f"internal error, nothing was posted: {self.message}"


@dataclass
class PeriodLockedError(LedgerError):
    """A posting was dated in a closed (locked) period."""

    period: str
    entry_date: str
    description: str = ""

    def __str__(self) -> str:
        return (
            f"period {self.period} is closed: refusing a posting dated {self.entry_date}"
            + (f" ({self.description})" if self.description else "")
        )


@dataclass
class PeriodOrderError(LedgerError):
    """Periods close in order, and only the last closed period can be reopened."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class InvariantError(LedgerError):
    """One or more invariants of docs/design.md §7 failed; nothing was changed.

    violations: list of ledger.store.invariants.Violation.
    """

    violations: list = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.violations)} invariant violation(s):\n" + "\n".join(
            f"  {v}" for v in self.violations
        )


@dataclass
class NotInitialisedError(LedgerError):
    """The database has no ledger schema (run `ledger init`) or an outdated one."""

    url: str
    detail: str = ""

    def __str__(self) -> str:
        return (
            f"database {self.url} is not initialised or not at the latest schema"
            f"{': ' + self.detail if self.detail else ''}; run `ledger init`"
        )


@dataclass
class NotFoundError(LedgerError):
    """A document, customer or grant named on the command line does not exist."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"no {self.kind} '{self.key}'"


@dataclass
class CatalogError(LedgerError):
    """The catalog file (ledger.toml) is invalid. file, key path and value are named."""

    file: str
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        key = f" key '{self.key}'" if self.key else ""
        val = "" if self.value is NO_VALUE else f" (value: {_show(self.value)})"
        return f"{self.file}:{key} {self.message}{val}"
