"""The HTTP API (docs/design.md §8.5) against a real server: `ledger serve` started by uvicorn in a
subprocess on a free local port, driven with httpx, on SQLite and PostgreSQL.

Idempotency by event id as for files, 409 naming both sources, 422 naming every field (nothing
of the request posted), 401, 413 (declared and streamed), group commit (a refused request never
refuses its neighbours; many clients never overdraw a hard cap), and a SIGKILL mid-load followed
by a re-send of every unanswered request giving the same books as the same events imported
from a file, each event once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from conftest import PLANS_CATALOG

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `ledger serve` subprocess on ``base``; ``post`` and ``get`` send the test token."""

    def __init__(self, url: str, catalog: Path, *extra: str, token: str = TOKEN) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LEDGER_API_TOKENS": token}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "--database-url", url, "serve", "--catalog", str(catalog),
             "--port", str(self.port), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ledger serve exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("ledger serve did not answer /healthz within 60 s")

    def post(self, body, **kw) -> httpx.Response:
        return httpx.post(self.base + "/v1/events", json=body, headers=AUTH, timeout=60, **kw)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=AUTH, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def catalog_file(tmp_path) -> Path:
    path = tmp_path / "ledger.toml"
    path.write_text(PLANS_CATALOG, encoding="utf-8")
    return path


@pytest.fixture
def serve(db_url, catalog_file):
    """Start servers on the test's database: ``serve(*extra_args)``; all stopped afterwards."""
    started: list[Server] = []

    def start(*extra: str, url: str | None = None) -> Server:
        server = Server(url or db_url, catalog_file, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def customer(cid: str, credits: int = 1000, amount: str = "20.00") -> list[dict]:
    """A customer holding one top-up of ``credits`` with no overage price (a hard cap)."""
    return [{"id": f"c-{cid}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
             "customer_id": cid, "name": f"Customer {cid}", "currency": "USD"},
            {"id": f"t-{cid}", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z",
             "customer_id": cid, "topup_id": f"top-{cid}", "credits": credits, "amount": amount}]


def usage(eid: str, cid: str, credits: int, second: int = 0) -> dict:
    return {"id": eid, "type": "usage.recorded", "customer_id": cid, "credits": credits,
            "occurred_at": f"2026-01-03T{9 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"}


def test_events_post_once_and_a_repeat_is_a_duplicate(serve):
    """One event or a list: 200 with each outcome; the same request again: duplicates, nothing new."""
    server = serve()
    first = server.post({"events": customer("acme")})
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["posted", "posted"]
    assert first.json()["invoices"] == ["INV-2026-000001"]
    one = server.post(usage("u-1", "acme", 300))
    assert one.json() == {"results": [{"id": "u-1", "status": "posted"}], "posted": 1, "duplicates": 0,
                          "quarantined": 0, "invoices": []}
    again = server.post(usage("u-1", "acme", 300))
    assert again.status_code == 200 and again.json()["results"] == [{"id": "u-1", "status": "duplicate"}]
    capped = server.post(usage("u-2", "acme", 900))
    assert capped.json()["results"] == [{"id": "u-2", "status": "quarantined", "reason":
                                         "hard cap: 900 credits requested, 700 available and no overage price"}]
    balance = server.get("/v1/customers/acme/balance").json()
    assert balance["credits"] == 700 and balance["deferred"] == "14.00" and balance["receivables"] == "20.00"
    assert balance["grants"] == [{"grant_id": "top-acme", "source": "topup", "units": 1000, "remaining": 700,
                                  "effective_at": "2026-01-02T00:00:00Z", "expires_at": None, "deferred": "14.00"}]
    assert balance["open_invoices"][0]["number"] == "INV-2026-000001"
    used = server.get("/v1/customers/acme/usage?from=2026-01-01&to=2026-02-01").json()
    assert (used["events"], used["credits"], used["quarantined"], used["quarantined_credits"]) == (1, 300, 1, 900)
    assert server.get("/v1/customers/acme/usage?from=2026-01-04&to=2026-02-01").json()["credits"] == 0
    assert server.get("/v1/invoices/INV-2026-000001").json()["total"] == "20.00"
    pdf = server.get("/v1/invoices/INV-2026-000001/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_an_id_used_with_other_content_is_409_naming_both(serve):
    """The same id with other content: 409 naming the stored event's source and the id; nothing posted."""
    server = serve()
    server.post({"events": customer("acme")})
    assert server.post(usage("u-1", "acme", 300)).status_code == 200
    clash = server.post({"events": [usage("u-9", "acme", 5), usage("u-1", "acme", 301)]})
    assert clash.status_code == 409, clash.text
    body = clash.json()
    assert body["error"] == "conflict"
    assert body["problems"] == [{"event": 2, "id": "u-1", "field": "id", "value": "u-1",
                                 "message": body["problems"][0]["message"]}]
    assert "already posted from http:" in body["message"] and "same event id, different content" in body["message"]
    assert server.get("/v1/customers/acme/balance").json()["credits"] == 700  # u-9 not posted either


def test_invalid_events_are_422_naming_each_field_and_post_nothing(serve):
    """Every problem of the request named (position, id, field, value); its valid events not posted."""
    server = serve()
    server.post({"events": customer("acme")})
    bad = server.post({"events": [usage("u-1", "acme", 10),
                                  {**usage("u-2", "acme", -5), "occurred_at": "2026-01-03T09:00:00"},
                                  {**usage("u-3", "acme", 1), "amount": 2.5}]})
    assert bad.status_code == 422
    found = {(p["event"], p["id"], p["field"]) for p in bad.json()["problems"]}
    assert found == {(2, "u-2", "credits"), (2, "u-2", "occurred_at"), (3, "u-3", "amount")}
    naive = next(p for p in bad.json()["problems"] if p["field"] == "occurred_at")
    assert naive["value"] == "2026-01-03T09:00:00" and "naive timestamps are refused" in naive["message"]
    unknown = server.post(usage("u-4", "nobody", 1))
    assert unknown.status_code == 422 and "unknown customer" in unknown.json()["problems"][0]["message"]
    broken = httpx.post(server.base + "/v1/events", content=b"{not json", headers=AUTH)
    assert broken.status_code == 422 and "is not valid JSON" in broken.json()["problems"][0]["message"]
    twice = httpx.post(server.base + "/v1/events", headers=AUTH,
                       content=b'{"id": "u-5", "id": "u-6", "type": "usage.recorded", "customer_id": "acme", '
                               b'"credits": 1, "occurred_at": "2026-01-03T09:00:00Z"}')
    assert twice.status_code == 422 and "more than once" in twice.json()["problems"][0]["message"]
    extra = server.post({**usage("u-7", "acme", 1), "events": []})  # one event, with a key of no event
    assert extra.status_code == 422 and [(p["id"], p["field"]) for p in extra.json()["problems"]] == [("u-7", "events")]
    assert httpx.get(server.base + "/v1/events", headers=AUTH).status_code == 405  # only POST is answered
    assert server.get("/v1/customers/acme/balance").json()["credits"] == 1000
    assert server.get("/v1/customers/nobody/balance").json() == {"error": "not_found", "message": "no customer 'nobody'"}
    assert server.get("/v1/invoices/INV-2099-000001/pdf").status_code == 404
    assert server.get("/v1/customers/acme/usage?from=2026-01-01").status_code == 422


def test_requests_without_a_valid_token_are_401_and_no_token_refuses_to_start(serve, db_url, catalog_file):
    """401 without the bearer token or with another one; /healthz and /openapi.json are open; a
    server with no token configured exits 2 with a message."""
    server = serve()
    body = usage("u-1", "acme", 1)
    assert httpx.post(server.base + "/v1/events", json=body).status_code == 401
    wrong = httpx.post(server.base + "/v1/events", json=body, headers={"Authorization": "Bearer " + TOKEN + "x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server.base + "/v1/customers/acme/balance").status_code == 401
    doc = httpx.get(server.base + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0" and "usage.recorded" in json.dumps(doc["components"]["schemas"]["Event"])
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_API_TOKENS"}
    run = subprocess.run([sys.executable, "-m", "ledger", "--database-url", db_url, "serve", "--catalog",
                          str(catalog_file), "--port", str(_free_port())], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "no API token configured" in run.stderr and "Traceback" not in run.stderr


def test_bodies_over_the_limit_are_413(serve):
    """413 by Content-Length, for a chunked body past the limit, and for more than 1,000 events."""
    server = serve("--max-body", "65536")
    big = b" " * 70_000
    assert httpx.post(server.base + "/v1/events", content=big, headers=AUTH).status_code == 413

    def chunks():
        for _ in range(10):
            yield b" " * 10_000

    streamed = httpx.post(server.base + "/v1/events", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413 and "over 65,536 bytes" in streamed.json()["message"]
    wide = serve()
    many = wide.post({"events": [usage(f"u-{i}", "acme", 1) for i in range(1001)]})
    assert many.status_code == 413 and "at most 1,000" in many.json()["message"]


def test_a_refused_request_never_refuses_its_neighbours(serve):
    """Requests posted in the same group: the ones naming an unknown customer or reusing an id
    are answered 422/409 alone; every other one is posted."""
    server = serve("--window-ms", "50")
    server.post({"events": customer("acme", credits=100_000)})
    server.post(usage("u-old", "acme", 1))
    answers: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(12)

    def client(i: int) -> None:
        body = (usage(f"u-{i}", "nobody", 1) if i % 4 == 1 else usage("u-old", "acme", 2) if i % 4 == 2
                else usage(f"u-{i}", "acme", 10, second=i))
        barrier.wait()
        answers[i] = server.post(body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = {i: r.status_code for i, r in answers.items()}
    assert codes == {i: 422 if i % 4 == 1 else 409 if i % 4 == 2 else 200 for i in range(12)}
    assert server.get("/v1/customers/acme/balance").json()["credits"] == 100_000 - 1 - 6 * 10
    stats = httpx.get(server.base + "/healthz").json()["group_commit"]
    assert stats["groups"] < stats["requests"]  # some requests shared a transaction



def test_max_group_caps_the_events_of_a_group(serve):
    """``--max-group 2``: requests sent together within the window are still posted, at most two
    events a transaction (a request of more is a group of its own)."""
    server = serve("--window-ms", "50", "--max-group", "2")
    server.post({"events": customer("acme", credits=100_000)})
    before = httpx.get(server.base + "/healthz").json()["group_commit"]
    answers: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(9)

    def client(i: int) -> None:
        barrier.wait()
        answers[i] = server.post(usage(f"u-{i}", "acme", 10, second=i))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in answers.values()} == {200}
    stats = httpx.get(server.base + "/healthz").json()["group_commit"]
    groups, requests = stats["groups"] - before["groups"], stats["requests"] - before["requests"]
    assert requests == 9 and groups >= 5  # nine events, two a group at most
    assert server.get("/v1/customers/acme/balance").json()["credits"] == 100_000 - 90

def _hammer(server: Server, clients: int, per_client: int, cid: str = "acme") -> list[dict]:
    results: list[dict] = []
    lock = threading.Lock()

    def client(w: int) -> None:
        with httpx.Client(base_url=server.base, headers=AUTH, timeout=60) as http:
            for i in range(per_client):
                r = http.post("/v1/events", json=usage(f"u-{w}-{i}", cid, 10, second=w * per_client + i))
                assert r.status_code == 200, r.text
                with lock:
                    results.extend(r.json()["results"])

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("workers", ["1", "2"])
def test_many_clients_never_overdraw_a_hard_cap(serve, db_url, workers):
    """8 clients x 25 requests of 10 credits against 1,000 credits on a hard cap: exactly 100
    posted and 100 quarantined, nothing left, invariants hold (with 2 workers on PostgreSQL)."""
    if workers == "2" and db_url.startswith("sqlite"):
        pytest.skip("SQLite is served by one worker")
    server = serve("--workers", workers)
    server.post({"events": customer("acme")})
    results = _hammer(server, clients=8, per_client=25)
    statuses = [r["status"] for r in results]
    assert (statuses.count("posted"), statuses.count("quarantined")) == (100, 100)
    balance = server.get("/v1/customers/acme/balance").json()
    assert balance["credits"] == 0 and balance["deferred"] == "0.00"
    from ledger.store.db import make_engine
    from ledger.store.invariants import check_all
    from sqlmodel import Session

    engine = make_engine(db_url)
    with Session(engine) as s:
        assert check_all(s) == []
    engine.dispose()


def _trial(url: str) -> list[tuple]:
    """(account, commodity, customer, grant, debit - credit) summed, and the usage rows' ids."""
    from ledger.store.db import make_engine

    engine = make_engine(url)
    with engine.connect() as c:
        sums = sorted(c.execute(sa.text(
            "SELECT account_code, commodity, customer_id, grant_id, sum(debit - credit) FROM journal_line "
            "GROUP BY account_code, commodity, customer_id, grant_id")).all())
        ids = c.execute(sa.text("SELECT id, status FROM usage_event ORDER BY id")).all()
    engine.dispose()
    return [tuple(r) for r in sums] + [tuple(r) for r in ids]


def test_sigkill_mid_load_then_resending_the_unanswered_gives_exactly_once_books(serve, db_url, make_books,
                                                                                 tmp_path):
    """SIGKILL the server while 6 clients send batches of usage; every answered event is in the
    books at once; re-sending every unanswered request to a new server gives the books of the
    same events imported from a file."""
    customers = [f"k{i}" for i in range(6)]
    setup = [e for cid in customers for e in customer(cid, credits=10_000_000, amount="1000.00")]
    batches = {w: [[usage(f"u-{w}-{b}-{k}", customers[w], 7 + k, second=b * 5 + k) for k in range(5)]
                   for b in range(40)] for w in range(6)}
    server = serve()
    assert server.post({"events": setup}).status_code == 200
    answered: list[list[dict]] = []
    unanswered: list[list[dict]] = []
    lock = threading.Lock()

    def client(w: int) -> None:
        with httpx.Client(base_url=server.base, headers=AUTH, timeout=30) as http:
            for batch in batches[w]:
                try:
                    r = http.post("/v1/events", json={"events": batch})
                    ok = r.status_code == 200
                except httpx.TransportError:
                    ok = False
                with lock:
                    (answered if ok else unanswered).append(batch)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(answered) < 30 and time.monotonic() < deadline:  # mid-load: some answered, most not yet
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    for t in threads:
        t.join()
    assert answered and unanswered, "the kill should fall mid-load"
    stored = {row[0] for row in _trial(db_url) if len(row) == 2}
    assert {e["id"] for b in answered for e in b} <= stored  # answered 200 means committed
    again = serve()

    def resend(part: list[list[dict]]) -> None:
        with httpx.Client(base_url=again.base, headers=AUTH, timeout=60) as http:
            for batch in part:
                assert http.post("/v1/events", json={"events": batch}).status_code == 200

    resenders = [threading.Thread(target=resend, args=(unanswered[k::6],)) for k in range(6)]
    for t in resenders:
        t.start()
    for t in resenders:
        t.join()
    reference = make_books()
    lines = setup + [e for w in range(6) for b in batches[w] for e in b]
    reference.post("\n".join(json.dumps(e) for e in lines))
    assert _trial(db_url) == _trial(reference.url)
    assert len([r for r in _trial(db_url) if len(r) == 2]) == 6 * 40 * 5


class _Receiver:
    """A local webhook receiver: records (path, headers, body); /flaky answers 500 to its first
    request."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.got: list[tuple[str, dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                first = not any(p == self.path for p, _, _ in receiver.got)
                receiver.got.append((self.path, dict(self.headers), body))
                self.send_response(500 if self.path == "/flaky" and first else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_usage_alerts_are_posted_signed_once_per_threshold_with_retries(db_url, tmp_path, monkeypatch):
    """Crossing 70%, 90% and 100% of a commitment posts one signed payload per threshold to each
    URL (a 500 is retried until delivered); re-sending the usage posts no alert again."""
    import hashlib
    import hmac

    receiver = _Receiver()
    secret = "whsec-0123456789abcdef"
    catalog = tmp_path / "hooks.toml"
    catalog.write_text(PLANS_CATALOG + f'\n[webhooks]\nurls = ["{receiver.base}/ok", "{receiver.base}/flaky"]\n'
                       "retry_seconds = 0.2\n", encoding="utf-8")
    monkeypatch.setenv("LEDGER_WEBHOOK_SECRET", secret)
    server = Server(db_url, catalog)
    try:
        setup = [customer("acme")[0], {"id": "com-1", "type": "commitment.purchased", "customer_id": "acme",
                                       "occurred_at": "2026-01-01T09:00:00Z", "commitment_id": "com-2026",
                                       "amount": "600.00", "credits": 1000, "term_start": "2026-01-01",
                                       "term_end": "2026-03-31"}]
        assert server.post({"events": setup}).status_code == 200
        for i, credits in enumerate((700, 250, 50)):
            assert server.post(usage(f"u-{i}", "acme", credits, second=i)).status_code == 200
            time.sleep(0.8)
        deadline = time.monotonic() + 20
        while len({(p, h["Idempotency-Key"]) for p, h, _ in receiver.got}) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.post(usage("u-0", "acme", 700)).json()["results"][0]["status"] == "duplicate"
        time.sleep(1.5)
    finally:
        server.stop()
        receiver.server.shutdown()
    by_path = {p: [(h, json.loads(b)) for q, h, b in receiver.got if q == p] for p in ("/ok", "/flaky")}
    assert [body["threshold"] for _, body in by_path["/ok"]] == [70, 90, 100]
    assert [body["threshold"] for _, body in by_path["/flaky"]] == [70, 70, 90, 100]  # the 500 was retried
    for path, headers, raw in receiver.got:
        t, v1 = (part.split("=", 1)[1] for part in headers["X-Ledger-Signature"].split(","))
        assert hmac.compare_digest(v1, hmac.new(secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest())
        body = json.loads(raw)
        assert headers["Idempotency-Key"] == body["idempotency_key"]
        assert (body["type"], body["customer_id"], body["scope"], body["grant_id"]) == (
            "usage.threshold_crossed", "acme", "commitment", "com-2026")
    assert len({h["Idempotency-Key"] for _, h, _ in receiver.got}) == 3  # one key per alert, the same for each URL
    from ledger.services.alerting import deliveries
    from ledger.store.db import make_engine

    engine = make_engine(db_url)
    rows = deliveries(engine, "acme")
    engine.dispose()
    assert sorted((r["url"].rsplit("/", 1)[1], r["threshold"], r["status"], r["attempts"]) for r in rows) == [
        ("flaky", 70, "delivered", 2), ("flaky", 90, "delivered", 1), ("flaky", 100, "delivered", 1),
        ("ok", 70, "delivered", 1), ("ok", 90, "delivered", 1), ("ok", 100, "delivered", 1)]


def test_healthz_is_503_when_the_schema_is_not_at_head(serve, db_url):
    """/healthz: 200 with the revision at head; 503 naming both revisions once the database is behind."""
    server = serve()
    ok = httpx.get(server.base + "/healthz")
    assert ok.status_code == 200 and ok.json()["migrations"] == "at head"
    from ledger.store.db import SCHEMA_HEAD, make_engine

    engine = make_engine(db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '0013'"))
    behind = httpx.get(server.base + "/healthz")
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": SCHEMA_HEAD})
    engine.dispose()
    assert behind.status_code == 503
    assert (behind.json()["schema"], behind.json()["head"], behind.json()["migrations"]) == ("0013", SCHEMA_HEAD,
                                                                                             "behind")


def test_a_soft_cap_crossing_is_queued_as_a_webhook_once_per_month(db_url, tmp_path):
    """acme holds 3,000 credits (1,700 used in all: under 70% of them) and its soft cap is 1,000
    credits a month: 750 used in March reach 70% (one alert per URL),
    a second queueing finds nothing new; 950 used in April reach 70% and 90% of April's cap:
    new alerts, keyed by the month (the same thresholds in another month are not repeats)."""
    from datetime import datetime, timezone

    from builders import ACME, ev
    from conftest import Books

    from ledger.catalog import load_catalog
    from ledger.services.alerting import deliveries, queue_alerts
    from ledger.store.db import make_engine

    path = tmp_path / "caps.toml"
    path.write_text(PLANS_CATALOG + '\n[webhooks]\nurls = ["https://hooks.example/a"]\n\n[customers.acme]\n'
                    "soft_cap = 1000\n", encoding="utf-8")
    engine = make_engine(db_url)
    books = Books(db_url, engine, load_catalog(path, required=True), tmp_path)
    books.post("\n".join([
        ACME,
        ev("t-1", "topup.purchased", "2026-03-01T09:00:00Z", customer_id="acme", topup_id="t-1", pack="pack_1000"),
        ev("t-2", "topup.purchased", "2026-03-01T09:01:00Z", customer_id="acme", topup_id="t-2", pack="pack_1000"),
        ev("t-3", "topup.purchased", "2026-03-01T09:02:00Z", customer_id="acme", topup_id="t-3", pack="pack_1000"),
        ev("u-1", "usage.recorded", "2026-03-10T09:00:00Z", customer_id="acme", credits=750),
        ev("u-2", "usage.recorded", "2026-04-10T09:00:00Z", customer_id="acme", credits=950),
    ]))
    now = datetime(2026, 4, 30, tzinfo=timezone.utc)
    try:
        assert queue_alerts(engine, books.catalog, {"acme"}, "2026-03", now) == 1
        assert queue_alerts(engine, books.catalog, {"acme"}, "2026-03", now) == 0
        assert queue_alerts(engine, books.catalog, {"acme"}, "2026-04", now) == 2
        rows = [r for r in deliveries(engine, "acme") if r["scope"] == "soft_cap"]
    finally:
        engine.dispose()
    payloads = sorted((json.loads(r["payload"])["period"], r["threshold"]) for r in rows)
    assert payloads == [("2026-03", 70), ("2026-04", 70), ("2026-04", 90)]
