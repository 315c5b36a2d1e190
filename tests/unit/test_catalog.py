"""The catalog (ledger.toml, docs/design.md §8.3): validated on load, errors name file, key and value."""

from __future__ import annotations

import pytest

from ledger.catalog import load_catalog
from ledger.errors import CatalogError

GOOD = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]
reporting_timezone = "America/New_York"
payment_terms_days = 30

[rate_card]
EXTRACT_TEXT = 5
GENERATE_REPORT = 50

[plans.professional]
name = "Professional"
currency = "USD"
monthly_fee = "299.00"
included_credits = 5000
overage_price = "0.12"
credit_ssp = "0.12"
platform_ssp = "99.00"
rollover = { percent = 25, max_periods = 1 }

[topups.pack_1000]
credits = 1000
price = "20.00"
currency = "USD"
expires_after_months = 12
"""


def test_the_design_example_catalog_loads(tmp_path):
    """The example catalog (docs/design.md §8.3) loads with its timezone, plans and packs."""
    path = tmp_path / "ledger.toml"
    path.write_text(GOOD)
    cat = load_catalog(path, required=True)
    assert str(cat.tz) == "America/New_York"
    assert cat.model.plans["professional"].rollover.percent == 25
    assert cat.topup("pack_1000").credits == 1000
    assert cat.model.rate_card == {"EXTRACT_TEXT": 5, "GENERATE_REPORT": 50}


@pytest.mark.parametrize("old,new,key,message", [
    ('monthly_fee = "299.00"', 'monthly_fee = "299.0.0"', "plans.professional.monthly_fee", "decimal string"),
    ('price = "20.00"', 'price = "-20.00"', "topups.pack_1000.price", "must not be negative"),
    ("percent = 25", "percent = 125", "plans.professional.rollover.percent", "less than or equal to 100"),
    ('name = "Professional"', 'name = "Professional"\ncolour = "blue"', "plans.professional.colour", "Extra inputs"),
    ('currency = "USD"\nmonthly_fee', 'currency = "USX"\nmonthly_fee', "plans.professional.currency", "ISO 4217"),
    ('"America/New_York"', '"Mars/Olympus"', "company.reporting_timezone", "IANA time zone"),
    ("EXTRACT_TEXT = 5", "EXTRACT_TEXT = 0", "rate_card", "must be positive"),
    ('monthly_fee = "299.00"', 'monthly_fee = "299.001"', "plans.professional", "monthly_fee 299.001: has 3 decimals; USD allows 2"),
    ('price = "20.00"', 'price = "20.005"', "topups.pack_1000", "price 20.005: has 3 decimals; USD allows 2"),
    ("percent = 25", "percent = 25, expires = 1", "plans.professional.rollover.expires", "boolean"),
    ("payment_terms_days = 30", 'payment_terms_days = 30\nlogo = "missing.png"', "company.logo", "file not found"),
    ("payment_terms_days = 30", 'payment_terms_days = 30\nlogo = "ledger.toml"', "company.logo", "must be one of"),
    ("payment_terms_days = 30", 'payment_terms_days = 30\ntemplates = "nowhere"', "company.templates", "folder not found"),
    ("payment_terms_days = 30", 'payment_terms_days = 30\ncountry = "USA"', "company.country", "pattern"),
    ("[rate_card]", '[company.payment]\niban = "DE89 3704 0044 0532 0130 01"\n[rate_card]', "company.payment.iban",
     "not a valid IBAN"),
    ("[rate_card]", '[company.payment]\niban = "DE89370400440532013000"\nbic = "COBADE"\n[rate_card]',
     "company.payment.bic", "not a valid BIC"),
    ("[rate_card]", '[company.payment]\naccount_number = "1234567"\nrouting_number = "123456789"\n[rate_card]',
     "company.payment.routing_number", "not a valid US routing number"),
    ("[rate_card]", '[company.payment]\nbic = "COBADEFFXXX"\npayment_link = "https://pay.example"\n[rate_card]',
     "company.payment", "bic needs an iban"),
    ("[rate_card]", '[company.payment]\nbank = "First Example Bank"\n[rate_card]', "company.payment",
     "needs an iban, an account_number or a payment_link"),
    ("[rate_card]", '[company.payment]\npayment_link = "http://pay.example"\n[rate_card]',
     "company.payment.payment_link", "pattern"),
])
def test_invalid_catalogs_name_file_key_and_value(tmp_path, old, new, key, message):
    """A bad value is refused with the file, the key path and the message."""
    path = tmp_path / "ledger.toml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(CatalogError) as err:
        load_catalog(path, required=True)
    text = str(err.value)
    assert str(path) in text and f"key '{key}'" in text and message in text


def test_payment_block_is_kept_in_the_company_with_iban_and_bic_normalised(tmp_path):
    """[company.payment] belongs to the company; spaces in the IBAN and BIC are dropped."""
    path = tmp_path / "ledger.toml"
    path.write_text(GOOD.replace("[rate_card]", '[company.payment]\niban = "DE89 3704 0044 0532 0130 00"\n'
                                 'bic = "COBA DEFF XXX"\naccount_number = "000123456789"\n'
                                 'routing_number = "123456780"\n[rate_card]', 1))
    payment = load_catalog(path, required=True).company.payment
    assert (payment.iban, payment.bic, payment.routing_number) == ("DE89370400440532013000", "COBADEFFXXX",
                                                                    "123456780")
    assert payment.transfer and payment.account_holder is None


def test_unparseable_toml_is_reported(tmp_path):
    """A file that is not TOML is reported as such, with its path."""
    path = tmp_path / "ledger.toml"
    path.write_text("[company\nname = 1")
    with pytest.raises(CatalogError, match="is not valid TOML"):
        load_catalog(path)


def test_catalog_show_prints_it_back(tmp_path):
    """`ledger catalog show` validates and prints the catalog; a bad one exits 1."""
    import json
    import subprocess
    import sys

    (tmp_path / "ledger.toml").write_text(GOOD)
    r = subprocess.run([sys.executable, "-m", "ledger", "catalog", "show", "--format", "json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["plans"]["professional"]["monthly_fee"] == "299.00"
    (tmp_path / "ledger.toml").write_text(GOOD.replace('"299.00"', '"abc"'))
    r = subprocess.run([sys.executable, "-m", "ledger", "catalog", "show"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "plans.professional.monthly_fee" in r.stderr and "Traceback" not in r.stderr


def test_logo_and_template_folder_resolve_against_the_catalog_file(tmp_path):
    """company.logo and company.templates are relative to the catalog's folder, not the cwd."""
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    (tmp_path / "tpl").mkdir()
    path = tmp_path / "ledger.toml"
    path.write_text(GOOD.replace("payment_terms_days = 30",
                                 'payment_terms_days = 30\nlogo = "brand/logo.svg"\ntemplates = "tpl"\ncountry = "DE"'))
    cat = load_catalog(path, required=True)
    assert cat.logo_path == (tmp_path / "brand" / "logo.svg").resolve()
    assert cat.templates_dir == (tmp_path / "tpl").resolve()
    assert cat.company.country == "DE"


@pytest.mark.parametrize("extra, key, message", [
    ('[costs.actions]\nUNKNOWN = { USD = "0.01" }\n', "", "costs.actions.UNKNOWN: the action is not in the rate card"),
    ('[costs]\ncredit = { USD = "-0.01" }\n', "costs.credit", "USD: must not be negative"),
    ('[costs]\ncredit = { XYZ = "0.01" }\n', "costs.credit", "XYZ: is not an ISO 4217 currency"),
    ('[auto_topup]\nbelow = 500\npack = "nope"\n', "", "auto_topup.pack: 'nope' is not a [topups] pack"),
    ('[auto_topup]\nbelow = 500\npack = "pack_1000"\nrecharge_to = 400\n', "auto_topup",
     "recharge_to 400 must be above below 500"),
    ('[customers.acme]\nsoft_cap = 0\n', "customers.acme.soft_cap", "greater than or equal to 1"),
])
def test_costs_auto_topup_and_soft_caps_are_validated(tmp_path, extra, key, message):
    """A bad [costs], [auto_topup] or [customers] value is refused naming its key and value."""
    (tmp_path / "ledger.toml").write_text(GOOD + "\n" + extra)
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path / "ledger.toml")
    assert message in str(err.value) and (not key or err.value.key == key), str(err.value)


def test_auto_topup_policies_by_customer_and_currency(tmp_path):
    """A customer's own policy wins; the catalog's applies only in its pack's currency; enabled =
    false turns it off; soft caps are per customer."""
    (tmp_path / "ledger.toml").write_text(GOOD + """
[auto_topup]
below = 500
pack = "pack_1000"

[customers.big]
auto_topup = { below = 100, pack = "pack_1000", monthly_cap = 1 }
soft_cap = 5000

[customers.off]
auto_topup = { enabled = false }
""")
    cat = load_catalog(tmp_path / "ledger.toml")
    assert cat.auto_topup("anyone", "USD").below == 500 and cat.auto_topup("anyone", "EUR") is None
    assert cat.auto_topup("big", "USD").monthly_cap == 1 and cat.auto_topup("off", "USD") is None
    assert cat.soft_caps() == {"big": 5000} and cat.soft_cap("anyone") is None
