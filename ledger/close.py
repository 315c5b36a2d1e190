"""Transitional: the month close moved to `ledger.services.closing` (the use cases) and
`ledger.store.closing` (its reads and writes). Only `close_record` is still imported from here, by
``reports/package.py``; delete this module once that import names ``ledger.store.closing``."""

from ledger.store.closing import close_record

__all__ = ["close_record"]
