"""`ledger report waterfall` and `ledger report usage-alerts`.

Named in the lazy table of the `report` group (ledger.cli.report), which imports this module
when one of them is first needed; this module imports neither that one nor ledger.cli. Each takes
``--period YYYY-MM`` (required), ``--format table|csv|json`` and ``--out FILE`` and uses the
catalog's reporting timezone. Exit codes as every command: 0 ok, 1 invalid input, 2 usage error
(e.g. a malformed --period).
"""

from __future__ import annotations

import click

from ledger.cli._common import FORMAT, OUT, PERIOD, Ctx, _period, emit_report


@click.command("waterfall")
@PERIOD
@FORMAT
@OUT
@click.pass_obj
def waterfall_cmd(obj: Ctx, period: str, fmt: str | None, out: str | None) -> None:
    """Deferred revenue at the period end by the month it will be recognised: at the latest
    (by expiry) and at the last 30 days' consumption rate, per customer; totals tie to 2100 + 2150."""
    from ledger.forecast import waterfall

    period = _period(period)
    with obj.session() as session:
        rep = waterfall(session, period, tz=obj.catalog.tz)
    emit_report(rep, fmt, out, wide=True)


@click.command("usage-alerts")
@PERIOD
@FORMAT
@OUT
@click.pass_obj
def usage_alerts_cmd(obj: Ctx, period: str, fmt: str | None, out: str | None) -> None:
    """Customers at 70%, 90% or 100% of a commitment, a plan allowance or all credits held,
    with the last 30 days' rate and the projected exhaustion date."""
    from ledger.forecast import usage_alerts

    period = _period(period)
    with obj.session() as session:
        rep = usage_alerts(session, period, tz=obj.catalog.tz, soft_caps=obj.catalog.soft_caps())
    emit_report(rep, fmt, out, wide=True)
