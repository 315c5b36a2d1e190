"""The service layer: one function per use case, behind the command line (``ledger.cli``) and the
Python API (``ledger.api``), which only translate arguments, call one service and print.

Each service takes what it needs (a session, an engine or a URL, the catalog, plain arguments),
runs its use case in its own transaction(s), commits or rolls back, and returns a plain result.
Transactions begin and end here and nowhere above; the SQL is in ``ledger.store`` and the
accounting in ``ledger.core``, so no module of this package imports a database library.

- `importing`: import events from files (chunked, in parallel), one batch of parsed events,
  events of the API (docs/design.md §6, §8.4); `scanning`: the first pass of a chunked import;
- `closing`: close a month (and write its close package), reopen it (docs/design.md §6.4);
- `verifying`: check invariants 1-6 over the whole journal (docs/design.md §7);
- `documents`: the invoice register, one invoice, PDFs of one or a month's documents;
- `setup`: create or migrate the database; `roles`: the least-privilege PostgreSQL roles;
- `serving`: the HTTP API's use cases (group commit of requests, a customer's balance and usage,
  health); `alerting`: usage alerts queued and delivered as webhooks (docs/design.md §8.6);
- `collector`: Python's garbage collector relaxed for a bulk run (an import, a close).

Importing this package imports none of them.
"""
