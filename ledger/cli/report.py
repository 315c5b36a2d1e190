"""`ledger report ...`: reports derived from the journal (--format table|csv|json, --out FILE).

`report waterfall` and `report usage-alerts` live in ledger.cli.forecast, named in the group's
table and imported when first needed.
"""

from __future__ import annotations

import click

from ledger.cli._common import FORMAT, OUT, PERIOD, Ctx, _period, emit_report
from ledger.cli._lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_subcommands={"waterfall": "ledger.cli.forecast:waterfall_cmd",
                                              "usage-alerts": "ledger.cli.forecast:usage_alerts_cmd"})
def report() -> None:
    """Reports derived from the journal (--format table|csv|json, --out FILE)."""


def _report_command(name: str, builder_name: str, help_text: str, period_required: bool = True):
    # no explicit default=None when required: click 8.3+ counts an explicit None default as a
    # value and skips the required check (a missing --period then reached the report as None)
    period_kw = {"required": True} if period_required else {"default": None}

    @report.command(name, help=help_text)
    @click.option("--period", **period_kw, help="Accounting period YYYY-MM.")
    @FORMAT
    @OUT
    @click.pass_obj
    def command(obj: Ctx, period: str | None, fmt: str | None, out: str | None, **kw) -> None:
        from ledger import reporting

        if period is not None:
            period = _period(period)
        with obj.session() as session:
            rep = getattr(reporting, builder_name)(session, period, **kw)
        emit_report(rep, fmt, out)

    return command


_report_command("trial-balance", "trial_balance", "Balances per account and commodity at the period end.")
_report_command("deferred-revenue", "deferred_revenue",
                "Deferred revenue rollforward per customer: opening, billed, recognised, breakage, refunded, rolled, closing.")
_report_command("revenue", "revenue", "Revenue by stream in the period, per currency, and the net.")
click.option("--customer", "customer_id", default=None, help="Only this customer's grants.")(
    _report_command("credits", "credits", "Per grant: opening, granted, consumed, rolled, expired, refunded, remaining, deferred."))
_report_command("audit-trail", "audit_trail", "Closes and reopens of periods: who, when, why, journal head, seal, checks.",
                period_required=False)
_report_command("reviews", "pending_reviews", "Usage held for review at a soft cap, still pending.",
                period_required=False)
_report_command("quarantine", "quarantine", "Usage kept out of the books (e.g. hard cap), with reasons.", period_required=False)
click.option("--customer", "customer_id", required=True, help="The customer.")(
    _report_command("customer", "customer_statement",
                    "Statement of account: invoices, payments, credit notes and credit balance, with the running balance.",
                    period_required=False))


@report.command("ar-aging")
@click.option("--period", default=None, help="Accounting period YYYY-MM: aging at its last day.")
@click.option("--as-of", "as_of", default=None, help="Aging at this date (YYYY-MM-DD); default: today, without --period.")
@FORMAT
@OUT
@click.pass_obj
def ar_aging_cmd(obj: Ctx, period: str | None, as_of: str | None, fmt: str | None, out: str | None) -> None:
    """Open receivables by days past due: current, 1-30, 31-60, 61-90, over 90."""
    from datetime import date

    from ledger.reporting import ar_aging

    if period is not None and as_of is not None:
        raise click.UsageError("give --period or --as-of, not both")
    day = None
    if period is not None:
        period = _period(period)
    else:
        try:
            day = date.fromisoformat(as_of) if as_of else date.today()
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from None
    with obj.session() as session:
        rep = ar_aging(session, period, as_of=day)
    emit_report(rep, fmt, out)


@report.command("guarantees")
@PERIOD
@FORMAT
@OUT
@click.pass_obj
def guarantees_cmd(obj: Ctx, period: str, fmt: str | None, out: str | None) -> None:
    """No-increase guarantees: per enrolled customer and month, legacy bill vs new bill, credits, cost."""
    from ledger.reporting import guarantees

    period = _period(period)
    with obj.session() as session:
        rep = guarantees(session, period, tz=obj.catalog.tz)
    emit_report(rep, fmt, out)


@report.command("margin")
@PERIOD
@click.option("--threshold", default=None,
              help="Flag margins under this percent (default: the catalog's costs.margin_threshold_percent, 40).")
@FORMAT
@OUT
@click.pass_obj
def margin_cmd(obj: Ctx, period: str, threshold: str | None, fmt: str | None, out: str | None) -> None:
    """Gross margin per customer: revenue recognised by stream, cost of usage, margin and margin %."""
    from decimal import Decimal, InvalidOperation

    from ledger.margin import gross_margin

    period = _period(period)
    limit: Decimal | int = obj.catalog.model.costs.margin_threshold_percent
    if threshold is not None:
        try:
            limit = Decimal(threshold)
        except InvalidOperation:
            raise click.BadParameter(f"{threshold!r} is not a number of percent (e.g. 40)", param_hint="--threshold") from None
        if not limit.is_finite():
            raise click.BadParameter(f"{threshold!r} is not a number of percent (e.g. 40)", param_hint="--threshold")
    with obj.session() as session:
        rep = gross_margin(session, period, threshold=limit)
    emit_report(rep, fmt, out)
