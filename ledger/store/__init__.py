"""The store: the one package that talks to the database.

It owns the tables (`models`), connections and migrations (`db`), loading customers' books and
the one derivation of a lot's balance (`books`, `lots`), the reads a posting makes (`reader`,
`events`), customer locks and the lock order (`events`), document numbers (`numbering`), the one
writer of journal rows, documents and records (`writer`) with its pipelined strategy
(`pipeline`), the close's records and seals (`closing`, `seals`), verify's checks
(`invariants`), the read models of reports, documents and exports (`reports`, `documents`,
`invoices`, `journal`), and the database roles (`roles`, `admin`). Nothing outside this package
imports SQLAlchemy, SQLModel or psycopg (tests/unit/test_limits.py).
"""
