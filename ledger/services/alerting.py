"""Usage alerts as webhooks (docs/design.md §8.6): queue an alert when a customer crosses 70, 90 or
100 percent of a commitment, a plan month's grant, all the credits it holds or its monthly soft
cap (docs/design.md §5.12), and deliver each
to the catalog's ``[webhooks]`` URLs, signed, with retries.

What is crossed is `ledger.forecast.usage_alerts` at the end of the period given (the same
measures as ``ledger report usage-alerts``). Each threshold reached gives one alert per measure,
keyed by ``idempotency_key`` = sha256 of (customer, scope, grant or the units held, threshold):
queued once (``webhook_delivery``, one row per URL) however often it is found again, and sent as
the ``Idempotency-Key`` header, so a receiver can drop a repeat after a lost acknowledgement.

A delivery is a POST of the JSON payload with ``X-Ledger-Signature: t=<unix seconds>,v1=<hex>``,
v1 = HMAC-SHA256(secret, "<t>.<body>") (the receiver recomputes it and refuses an old t). A 2xx
answer marks it delivered; anything else is tried again after ``retry_seconds`` x 2^(attempts -
1) (at most an hour) until ``max_attempts``, then it is marked failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.forecast import THRESHOLDS, usage_alerts
from ledger.store import webhooks
from ledger.store.admin import session_on

if TYPE_CHECKING:
    from ledger.store.admin import Engine

SECRET_ENV = "LEDGER_WEBHOOK_SECRET"
EVENT = "usage.threshold_crossed"
Send = Callable[[str, bytes, dict[str, str], float], tuple[int | None, str | None]]


def alert_key(customer_id: str, scope: str, grant_id: str, granted: int, threshold: int, period: str = "") -> str:
    """The idempotency key of one alert (sha256 hex). For ``all`` the units held are part of it:
    after a new grant, crossing a threshold again is a new alert; for ``soft_cap`` (a monthly
    cap) the period is: each month's crossing is a new alert."""
    what = {"all": f"held:{granted}", "soft_cap": f"month:{period}"}.get(scope, grant_id)
    return hashlib.sha256(f"{customer_id}|{scope}|{what}|{threshold}".encode()).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ledger-Signature`` header value: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def queue_alerts(engine: Engine, catalog: Catalog, customers: set[str], period: str, now: datetime) -> int:
    """Queue a delivery per URL for every threshold the ``customers`` have reached at the end of
    ``period`` ('YYYY-MM') and that is not queued yet; commit. Returns how many were queued."""
    urls = catalog.model.webhooks.urls
    if not urls or not customers:
        return 0
    with session_on(engine) as session:
        rows = []
        for row in usage_alerts(session, period, tz=catalog.tz, soft_caps=catalog.soft_caps()).rows:
            if row["customer_id"] not in customers:
                continue
            for threshold in (t for t in THRESHOLDS if t <= row["threshold"]):
                key = alert_key(row["customer_id"], row["scope"], row["grant_id"], row["granted"], threshold, period)
                payload = {"type": EVENT, "idempotency_key": key, "customer_id": row["customer_id"],
                           "scope": row["scope"], "grant_id": row["grant_id"] or None, "threshold": threshold,
                           "granted": row["granted"], "consumed": row["consumed"], "percent": row["percent"],
                           "outstanding": row["outstanding"], "period": period,
                           "exhaustion": row["exhaustion"], "expires": row["expires"]}
                text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
                for url in urls:
                    rows.append({"customer_id": row["customer_id"], "id": hashlib.sha256(f"{key}|{url}".encode())
                                 .hexdigest(), "idempotency_key": key, "url": url, "scope": row["scope"],
                                 "grant_id": row["grant_id"], "threshold": threshold, "payload": text,
                                 "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now})
        queued = webhooks.queue_deliveries(session, rows)
        session.commit()
    return queued


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST ``body`` to ``url``: (HTTP status, None), or (status or None, what went wrong)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 -- http(s) URLs only
            return answer.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))[:500]


def deliver_due(engine: Engine, catalog: Catalog, secret: str, now: datetime, send: Send = post_json) -> tuple[int, int]:
    """Send every delivery due at ``now`` and record each attempt; commit. Returns (delivered,
    attempts that failed)."""
    hooks = catalog.model.webhooks
    delivered = failed = 0
    with session_on(engine) as session:
        for d in webhooks.due_deliveries(session, now):
            body = d["payload"].encode("utf-8")
            headers = {"Content-Type": "application/json", "Idempotency-Key": d["idempotency_key"],
                       "X-Ledger-Delivery": d["id"], "X-Ledger-Event": EVENT,
                       "X-Ledger-Signature": signature(secret, int(now.timestamp()), body)}
            status, error = send(d["url"], body, headers, hooks.timeout_seconds)
            attempts = d["attempts"] + 1
            if status is not None and 200 <= status < 300:
                delivered += 1
                webhooks.record_attempt(session, d["customer_id"], d["id"], status="delivered", attempts=attempts,
                                        next_attempt_at=now, response_status=status, error=None, delivered_at=now)
                continue
            failed += 1
            wait = min(3600.0, hooks.retry_seconds * 2 ** (attempts - 1))
            webhooks.record_attempt(session, d["customer_id"], d["id"],
                                    status="failed" if attempts >= hooks.max_attempts else "pending",
                                    attempts=attempts, next_attempt_at=now + timedelta(seconds=wait),
                                    response_status=status, error=error or f"HTTP {status}", delivered_at=None)
        session.commit()
    return delivered, failed


def deliveries(engine: Engine, customer_id: str | None = None) -> list[dict]:
    """The deliveries recorded (of one customer), oldest first."""
    with session_on(engine) as session:
        return webhooks.deliveries(session, customer_id)
