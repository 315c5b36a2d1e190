"""`ledger catalog show`: the catalog (ledger.toml), validated and printed back."""

from __future__ import annotations

import json

import click

from ledger.cli._common import Ctx, _fmt


@click.group()
def catalog() -> None:
    """The catalog (ledger.toml): company, rate card, plans, top-up packs."""


@catalog.command("show")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format (default: table on a terminal, json otherwise).")
@click.pass_obj
def catalog_show(obj: Ctx, fmt: str | None) -> None:
    """Validate the catalog and print it back (exit 1 naming file, key and value if invalid)."""
    from ledger.catalog import load_catalog

    cat = load_catalog(obj.catalog_path, required=True)
    data = cat.model.model_dump(mode="json")
    if _fmt(fmt) == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    company = data["company"]
    if company is None:
        click.echo(f"no [company] ({cat.path}): import and close refuse until it names the seller; reporting timezone UTC")
    else:
        click.echo(f"{company['name']} ({cat.path}); reporting timezone {company['reporting_timezone']}, "
                   f"net {company['payment_terms_days']} days")
    click.echo("rate card: " + (", ".join(f"{k} = {v} credits" for k, v in data["rate_card"].items()) or "none"))
    for code, plan in data["plans"].items():
        click.echo(f"plan {code}: {plan['name']}, {plan['monthly_fee']} {plan['currency']}/month, "
                   f"{plan['included_credits']:,} credits, overage {plan['overage_price'] or 'none (hard cap)'}, "
                   f"SSP credit {plan['credit_ssp']} / platform {plan['platform_ssp']}, rollover {plan['rollover']['percent']}%")
    for code, pack in data["topups"].items():
        click.echo(f"top-up {code}: {pack['credits']:,} credits for {pack['price']} {pack['currency']}"
                   + (f", expires after {pack['expires_after_months']} months" if pack["expires_after_months"] else ""))
    costs = data["costs"]
    unit = [f"{a} {c} {cur}/unit" for a, by in costs["actions"].items() for cur, c in by.items()]
    unit += [f"{c} {cur}/credit" for cur, c in costs["credit"].items()]
    click.echo("cost to serve: " + (", ".join(unit) or "none")
               + f"; margins flagged under {costs['margin_threshold_percent']}%")
    policies = ([("every customer", data["auto_topup"])] if data["auto_topup"] else []) + [
        (cid, terms["auto_topup"]) for cid, terms in data["customers"].items() if terms["auto_topup"]]
    for who, p in policies:
        click.echo(f"auto top-up ({who}): " + (
            f"below {p['below']:,} credits buy {p['pack']}" + (f" up to {p['recharge_to']:,}" if p["recharge_to"] else "")
            + f", at most {p['monthly_cap']} a month" if p["enabled"] else "off"))
    caps = {cid: terms["soft_cap"] for cid, terms in data["customers"].items() if terms["soft_cap"]}
    if caps:
        click.echo("soft caps: " + ", ".join(f"{cid} {cap:,} credits a month" for cid, cap in caps.items()))
