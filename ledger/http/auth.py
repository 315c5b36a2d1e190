"""Bearer tokens: read once at start-up, compared in constant time.

Tokens come from the environment variable ``LEDGER_API_TOKENS`` (comma-separated) and from a
token file (one token a line; blank lines and lines starting with ``#`` are skipped). A request
is allowed when its ``Authorization: Bearer <token>`` equals one of them, compared with
`hmac.compare_digest` against every configured token (no early exit, so the time taken does not
say which one nearly matched).
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

ENV = "LEDGER_API_TOKENS"


class TokenError(Exception):
    """No usable token is configured, or the token file cannot be read (the message says which)."""


def load_tokens(token_file: str | None = None, environ: dict | None = None) -> tuple[bytes, ...]:
    """The configured tokens (UTF-8 bytes), from ``LEDGER_API_TOKENS`` and ``token_file``.

    raises TokenError when the file cannot be read or when no token is configured at all (a
    server that would accept anyone is refused)."""
    env = os.environ if environ is None else environ
    tokens = [t.strip() for t in env.get(ENV, "").split(",") if t.strip()]
    if token_file:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenError(f"cannot read the token file {token_file}: {exc.strerror or exc}") from None
        tokens += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not tokens:
        raise TokenError(f"no API token configured: set {ENV} (comma-separated) or pass --token-file "
                         "(one token a line); the server does not start without one")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise TokenError(f"an API token must be at least 16 characters ({len(short)} shorter); "
                         "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return tuple(t.encode("utf-8") for t in tokens)


def allowed(header: str | None, tokens: tuple[bytes, ...]) -> bool:
    """Whether the ``Authorization`` header value carries one of ``tokens`` as a bearer token."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    candidate = given.strip().encode("utf-8")
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(candidate, token)
    return ok
