"""The least-privilege PostgreSQL roles (docs/design.md §9.3): a writer that may import and close
(INSERT and SELECT on the journal, nothing else there) and an auditor that may only read, set up
by `ledger.store.roles.apply_roles` in one transaction, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.store.admin import is_postgres_url, public_url, roles_in_effect
from ledger.store.db import open_engine
from ledger.store.roles import RolesError, RolesPlan, apply_roles, check_role_name

__all__ = ["RolesError", "RolesSetup", "check_role_name", "create_roles"]


@dataclass
class RolesSetup:
    """What `create_roles` did: the ``plan`` it ran (or, with ``dry_run``, would run: see
    `RolesPlan.statements`); ``where``: the database URL with its password hidden; ``state``:
    role -> "created" | "existed", then ", LOGIN" | ", NOLOGIN"; ``have``: role -> table -> the
    privileges in effect (`ledger.store.roles.effective_privileges`). Empty after a dry run."""

    plan: RolesPlan
    where: str
    dry_run: bool = False
    state: dict[str, str] = field(default_factory=dict)
    have: dict[str, dict[str, str]] = field(default_factory=dict)


def create_roles(url: str, writer: str, auditor: str, *, login: bool = False, writer_password: str | None = None,
                 auditor_password: str | None = None, dry_run: bool = False) -> RolesSetup:
    """Create (idempotently) roles ``writer`` and ``auditor`` on the PostgreSQL database at ``url``
    and set their privileges to the policy of `ledger.store.roles`, revoking anything else; with
    ``dry_run`` plan only. New roles are NOLOGIN unless ``login`` or a password is given.

    raises RolesError (not PostgreSQL, a table without a policy: nothing changed),
    NotInitialisedError, and database errors (e.g. no CREATEROLE privilege).
    """
    if not is_postgres_url(url):
        raise RolesError(f"roles need PostgreSQL: {url} is SQLite, which has no roles or privileges "
                         "(an embedded database trusts whoever can open its file)")
    engine = open_engine(url)
    try:
        plan = apply_roles(engine, writer, auditor, login=login, writer_password=writer_password,
                           auditor_password=auditor_password, dry_run=dry_run)
        if dry_run:
            return RolesSetup(plan, public_url(engine), dry_run=True)
        have, logins = roles_in_effect(engine, writer, auditor, plan.schema)
    finally:
        engine.dispose()
    state = {r: ("created" if r in plan.created else "existed") + (", LOGIN" if logins.get(r) else ", NOLOGIN")
             for r in (writer, auditor)}
    return RolesSetup(plan, public_url(engine), state=state, have=have)
