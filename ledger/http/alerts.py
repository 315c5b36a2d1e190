"""The usage-alert thread of one server process: after groups commit, queue the alerts of the
customers they touched and deliver what is due (`ledger.services.alerting`), off the request path.

`AlertWorker.note` is called by the committer with the customers of a committed group and the
period of its latest event (event time, in the reporting timezone); every ``interval`` seconds
the thread queues the alerts of the customers noted since, then sends the deliveries due (those
of earlier failures too). A failure here never reaches a request: it is logged and tried again.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from ledger.catalog import Catalog
from ledger.services import alerting

log = logging.getLogger("ledger.http.alerts")


class AlertWorker:
    """Queues and delivers usage alerts on its own thread (see the module docstring)."""

    def __init__(self, engine, catalog: Catalog, secret: str, *, interval: float = 0.5) -> None:
        self.engine, self.catalog, self.secret, self.interval = engine, catalog, secret, interval
        self._dirty: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-usage-alerts", daemon=True)

    def note(self, customers: set[str], period: str) -> None:
        """Customers whose books a committed group changed, and the period to measure them at."""
        with self._lock:
            self._dirty.setdefault(period, set()).update(customers)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def run_once(self) -> None:
        """Queue the alerts of the customers noted so far, then deliver what is due."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        now = datetime.now(UTC)
        for period, customers in sorted(dirty.items()):
            alerting.queue_alerts(self.engine, self.catalog, customers, period, now)
        alerting.deliver_due(self.engine, self.catalog, self.secret, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 -- logged; the next round tries again
                log.exception("usage alerts: this round failed")
