"""The accounting core: the rules of the ledger as functions over plain values.

No database session, no SQL, no clock. A `posting.Posting` takes a catalog, the closed
periods and a `ports.LedgerStore` (how it reads customers' books and takes document numbers);
events applied to it produce journal entries (`entries.EntryDraft`), documents
(`documents.InvoiceDraft`) and records (`records`) as values, which the store's writer writes.

- `entries`: postings, entry kinds, the balance and period checks.
- `records`: the plain records the core reads and creates.
- `book`: a customer's working state (grants, subscriptions, overage, guarantees).
- `schedule`: time-driven steps in event time.
- `rules`: one module per accounting rule, and the event -> rule table.
"""
