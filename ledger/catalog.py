"""The catalog (`ledger.toml`, docs/design.md §8.3): the company, the rate card, plans and top-up packs.

Validated on load; a bad catalog raises CatalogError naming the file, the key and the value.
Without a catalog file (or without its ``[company]`` table) there is no seller: reports and
verify work (periods in UTC), but nothing that issues an invoice or credit note may run
(`Catalog.require_company`); ``ledger init --catalog FILE`` writes a starter catalog
(`ledger.services.setup.STARTER_CATALOG`).
"""

from __future__ import annotations

import json
import re

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger.errors import NO_VALUE, CatalogError
from ledger.core.money import is_currency, parse_decimal, to_minor
from ledger.event_schemas import NO_CONTROLS, control_message

_Line = Annotated[str, StringConstraints(pattern=NO_CONTROLS)]
"""Text printed on documents and written into Factur-X XML: no control character (docs/design.md §8.2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _decimal_str(value: str, *, allow_zero: bool = True) -> str:
    d = parse_decimal(value)
    if d < 0 or (d == 0 and not allow_zero):
        raise ValueError("must not be negative" if d < 0 else "must be positive")
    return value


class Payment(_Strict):
    """How customers pay an invoice (``[company.payment]``), printed on every invoice with an
    amount due and written into its Factur-X XML as the payment means (BG-16).

    account_holder: the payee's account name (the company's name when omitted); bank: the
    bank's name; iban (ISO 13616, checked digit by digit with its mod-97 check) and bic (ISO
    9362, 8 or 11 characters) for a SEPA credit transfer; account_number and routing_number
    (a US ABA routing number, 9 digits with its check digit) for a domestic transfer;
    payment_link: an https URL where the invoice can be paid by card; note: one more sentence
    printed under the instructions (e.g. "Wire fees are borne by the payer."). Spaces in an
    IBAN or BIC are allowed and dropped. raises CatalogError (file, key, value) on a bad value.
    """

    account_holder: _Line | None = None
    bank: _Line | None = None
    iban: str | None = None
    bic: str | None = None
    account_number: str | None = Field(default=None, pattern=r"^[0-9A-Za-z -]{4,34}$")
    routing_number: str | None = None
    payment_link: str | None = Field(default=None, pattern=r"^https://[^\s]{3,500}$")
    note: _Line | None = None

    @field_validator("iban")
    @classmethod
    def _iban(cls, v: str | None) -> str | None:
        from stdnum import iban
        from stdnum.exceptions import ValidationError as NumberError

        if v is None:
            return v
        try:
            return iban.validate(v)
        except NumberError as exc:
            raise ValueError(f"is not a valid IBAN: {exc}") from None

    @field_validator("bic")
    @classmethod
    def _bic(cls, v: str | None) -> str | None:
        from stdnum import bic
        from stdnum.exceptions import ValidationError as NumberError

        if v is None:
            return v
        try:
            return bic.validate(v)
        except NumberError as exc:
            raise ValueError(f"is not a valid BIC (8 or 11 characters: bank, country, location, branch): {exc}") from None

    @field_validator("routing_number")
    @classmethod
    def _routing(cls, v: str | None) -> str | None:
        from stdnum.exceptions import ValidationError as NumberError
        from stdnum.us import rtn

        if v is None:
            return v
        try:
            return rtn.validate(v)
        except NumberError as exc:
            raise ValueError(f"is not a valid US routing number (9 digits with a check digit): {exc}") from None

    @model_validator(mode="after")
    def _complete(self):
        if self.bic is not None and self.iban is None:
            raise ValueError("bic needs an iban")
        if self.routing_number is not None and self.account_number is None:
            raise ValueError("routing_number needs an account_number")
        if not (self.iban or self.account_number or self.payment_link):
            raise ValueError("needs an iban, an account_number or a payment_link")
        return self

    @property
    def transfer(self) -> bool:
        """True when the block names an account to transfer to (IBAN or account number)."""
        return bool(self.iban or self.account_number)


class Company(_Strict):
    """The seller printed on every invoice and credit note. ``name`` and ``address`` (one or more
    lines) are required; the rest has defaults. An issued document keeps a snapshot of this whole
    model (`Catalog.seller_snapshot`), so a field added later needs a default for older snapshots
    to load."""

    name: _Line = Field(min_length=1)
    address: list[_Line] = Field(min_length=1)
    email: _Line | None = None
    tax_id: _Line | None = None  # the seller's tax registration (e.g. a US EIN), printed and in e-invoices
    vat_id: str | None = Field(default=None, pattern=r"^[A-Z]{2}[0-9A-Za-z+*.]{2,13}$")  # EU VAT id with prefix
    reporting_timezone: str = "UTC"
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    country: str = Field(default="US", pattern=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2, for e-invoices
    logo: str | None = None  # PNG, JPEG or SVG file, relative to the catalog file
    templates: str | None = None  # folder of document.html / document.css overrides, relative to the catalog
    payment: Payment | None = None  # how customers pay: printed on invoices with an amount due, and in Factur-X

    @field_validator("reporting_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone") from None
        return v


class Rollover(_Strict):
    percent: int = Field(ge=0, le=100)
    max_periods: int | None = Field(default=None, ge=1)
    max_credits: int | None = Field(default=None, ge=0)
    expires: StrictBool = True


class Plan(_Strict):
    name: _Line
    currency: str
    monthly_fee: str
    included_credits: int = Field(ge=0)
    overage_price: str | None = None
    credit_ssp: str
    platform_ssp: str
    rollover: Rollover = Rollover(percent=0)

    _money = field_validator("monthly_fee", "credit_ssp", "platform_ssp", "overage_price")(
        classmethod(lambda cls, v: v if v is None else _decimal_str(v))
    )
    _currency = field_validator("currency")(classmethod(lambda cls, v: _check_currency(v)))

    @model_validator(mode="after")
    def _fee_in_minor_units(self):
        _minor_units(self.monthly_fee, self.currency, "monthly_fee")
        return self


class TopupPack(_Strict):
    credits: int = Field(gt=0)
    price: str
    currency: str
    expires_after_months: int | None = Field(default=None, ge=1)

    _money = field_validator("price")(classmethod(lambda cls, v: _decimal_str(v, allow_zero=False)))
    _currency = field_validator("currency")(classmethod(lambda cls, v: _check_currency(v)))

    @model_validator(mode="after")
    def _price_in_minor_units(self):
        _minor_units(self.price, self.currency, "price")
        return self


def _minor_units(value: str, currency: str, name: str) -> None:
    try:
        to_minor(value, currency)
    except ValueError as exc:
        raise ValueError(f"{name} {value}: {exc}") from None


def _check_currency(v: str) -> str:
    if not is_currency(v):
        raise ValueError("is not an ISO 4217 currency")
    return v


class Webhooks(_Strict):
    """Usage alerts posted by ``ledger serve`` (docs/design.md §8.6): each URL gets a signed JSON
    payload when a customer crosses 70, 90 or 100 percent of a commitment, a plan month's grant
    or all the credits it holds; a failed delivery is tried again after ``retry_seconds`` x 2^n
    (n: attempts so far, at most an hour), ``max_attempts`` times in all."""

    urls: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_seconds: float = Field(default=30.0, gt=0, le=3600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return v


def _unit_costs(v: dict[str, str]) -> dict[str, str]:
    """Currency -> cost of one unit: an ISO 4217 code and a non-negative decimal string (more
    decimals than the currency are allowed: costs are rounded per customer-day)."""
    for currency, cost in v.items():
        if not is_currency(currency):
            raise ValueError(f"{currency}: is not an ISO 4217 currency")
        if len(cost) > 40:
            raise ValueError(f"{currency}: at most 40 characters")
        try:
            _decimal_str(cost)
        except ValueError as exc:
            raise ValueError(f"{currency}: {exc}") from None
    return v


class Costs(_Strict):
    """The cost to serve usage (docs/design.md §5.10): per unit of a rate-card action and per
    credit of usage given as credits, per currency; the margin report flags gross margins under
    ``margin_threshold_percent``."""

    actions: dict[str, dict[str, str]] = Field(default_factory=dict)  # action -> currency -> cost per unit
    credit: dict[str, str] = Field(default_factory=dict)  # currency -> cost per credit (usage given as credits)
    margin_threshold_percent: int = Field(default=40, ge=-1000, le=100)

    @field_validator("actions")
    @classmethod
    def _actions(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for action, costs in v.items():
            try:
                _unit_costs(costs)
            except ValueError as exc:
                raise ValueError(f"{action}.{exc}") from None
        return v

    _credit = field_validator("credit")(classmethod(lambda cls, v: _unit_costs(v)))


class AutoTopup(_Strict):
    """Buy credits when usage leaves fewer than ``below`` usable (docs/design.md §5.11): one
    ``pack`` (or, with ``recharge_to``, as many packs as bring the credits to at least it), at
    most ``monthly_cap`` times per accounting month; ``enabled = false`` turns a catalog-wide
    policy off for one customer."""

    below: int = Field(default=1, ge=1)
    pack: str = ""
    monthly_cap: int = Field(default=3, ge=1, le=1000)
    recharge_to: int | None = Field(default=None, ge=1)
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _shape(self):
        if self.enabled and not self.pack:
            raise ValueError("needs a pack (a [topups] code)")
        if self.recharge_to is not None and self.recharge_to <= self.below:
            raise ValueError(f"recharge_to {self.recharge_to} must be above below {self.below}")
        return self


class CustomerTerms(_Strict):
    auto_topup: AutoTopup | None = None
    soft_cap: int | None = Field(default=None, ge=1)  # credits a month; beyond it usage is held for review


class CatalogModel(_Strict):
    company: Company | None = None
    rate_card: dict[str, int] = Field(default_factory=dict)
    plans: dict[str, Plan] = Field(default_factory=dict)
    topups: dict[str, TopupPack] = Field(default_factory=dict)
    webhooks: Webhooks = Webhooks()
    costs: Costs = Costs()
    auto_topup: AutoTopup | None = None  # for every customer in the pack's currency
    customers: dict[str, CustomerTerms] = Field(default_factory=dict)  # per-customer terms (override)

    @model_validator(mode="after")
    def _costed_actions_priced(self):
        unknown = sorted(set(self.costs.actions) - set(self.rate_card))
        if unknown:
            raise ValueError(f"costs.actions.{unknown[0]}: the action is not in the rate card")
        policies = [("auto_topup", self.auto_topup)] + [(f"customers.{c}.auto_topup", t.auto_topup)
                                                       for c, t in self.customers.items()]
        for key, policy in policies:
            if policy is not None and policy.enabled and policy.pack not in self.topups:
                raise ValueError(f"{key}.pack: {policy.pack!r} is not a [topups] pack")
        return self

    @field_validator("rate_card")
    @classmethod
    def _rates(cls, v: dict[str, int]) -> dict[str, int]:
        for action, credits in v.items():
            if credits <= 0:
                raise ValueError(f"{action}: credits per unit must be positive")
        return v


@dataclass(frozen=True)
class Catalog:
    """A validated catalog. tz: the reporting timezone (periods are its calendar months; UTC
    without a company). logo: the bytes of ``company.logo`` as read when the catalog was loaded
    (None without one), so that what a document stores at issue is what was validated."""

    model: CatalogModel = field(default_factory=CatalogModel)
    path: str | None = None
    logo: bytes | None = None

    @property
    def company(self) -> Company:
        """The seller; raises CatalogError (naming the file and how to get a starter catalog)
        when the catalog has no ``[company]`` table or there is no catalog file."""
        return self.require_company("issuing invoices and credit notes")

    def require_company(self, needed_for: str) -> Company:
        """The company, or CatalogError saying that ``needed_for`` (e.g. "`ledger import`")
        needs a catalog with a ``[company]`` table (name and address of the seller)."""
        if self.model.company is None:
            where = self.path or "ledger.toml"
            how = f"{needed_for} needs a catalog whose [company] table gives the seller's name and address"
            if self.path:
                raise CatalogError(where, "company", NO_VALUE, f"is missing: {how} (add the table; `ledger init "
                                   "--catalog NEW.toml` writes a starter catalog showing every key)")
            raise CatalogError(where, "", NO_VALUE, f"not found: {how} (`ledger init --catalog {where}` writes a "
                               "starter catalog to fill in; or pass --catalog FILE)")
        return self.model.company

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.model.company.reporting_timezone if self.model.company else "UTC")

    def seller_snapshot(self) -> str:
        """The company as canonical JSON (every field of `Company`, sorted keys, no whitespace,
        UTF-8): what an invoice or credit note stores as its seller when issued. raises
        CatalogError without a company."""
        return json.dumps(self.company.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)

    def with_company(self, company: Company) -> Catalog:
        """This catalog with ``company`` as its seller (an issued document's snapshot); its
        paths still resolve against this catalog's folder."""
        return Catalog(self.model.model_copy(update={"company": company}), self.path, self.logo)

    def asset(self, relative: str | None) -> Path | None:
        """A catalog-relative path (``company.logo``, ``company.templates``) resolved against the
        catalog file's folder, or None when not set."""
        if relative is None:
            return None
        base = Path(self.path).resolve().parent if self.path else Path.cwd()
        return (base / relative).resolve()

    @property
    def logo_path(self) -> Path | None:
        return self.asset(self.model.company.logo) if self.model.company else None

    @property
    def logo_type(self) -> str | None:
        """The media type of the logo (image/png, image/jpeg, image/svg+xml), or None."""
        path = self.logo_path
        return LOGO_TYPES[path.suffix.lower()] if path is not None else None

    @property
    def templates_dir(self) -> Path | None:
        return self.asset(self.model.company.templates) if self.model.company else None

    def topup(self, code: str) -> TopupPack | None:
        return self.model.topups.get(code)

    def plan(self, code: str) -> Plan | None:
        return self.model.plans.get(code)

    def auto_topup(self, customer_id: str, currency: str) -> AutoTopup | None:
        """The auto top-up policy of a customer: its own (``[customers.<id>]``), else the
        catalog's when its pack is in the customer's currency; None when none applies."""
        terms = self.model.customers.get(customer_id)
        policy = terms.auto_topup if terms is not None and terms.auto_topup is not None else self.model.auto_topup
        if policy is None or not policy.enabled or self.model.topups[policy.pack].currency != currency:
            return None
        return policy

    def soft_caps(self) -> dict[str, int]:
        """Every customer's monthly soft cap in credits, by customer id."""
        return {cid: t.soft_cap for cid, t in self.model.customers.items() if t.soft_cap is not None}

    def soft_cap(self, customer_id: str) -> int | None:
        """The customer's monthly soft cap in credits (docs/design.md §5.12), or None."""
        terms = self.model.customers.get(customer_id)
        return terms.soft_cap if terms is not None else None

    def unit_cost(self, action: str | None, currency: str) -> str | None:
        """The cost to serve one unit of ``action`` (None: one credit of usage given as
        credits) in ``currency``, a decimal string in major units, or None when none is set."""
        costs = self.model.costs
        return costs.credit.get(currency) if action is None else costs.actions.get(action, {}).get(currency)


def load_catalog(path: str | Path | None, *, required: bool = False) -> Catalog:
    """Load and validate ``path``; a missing file gives the default catalog unless ``required``.

    raises CatalogError (file, key, value) on unreadable TOML or an invalid value.
    """
    if path is None:
        return Catalog()
    p = Path(path)
    if not p.exists():
        if required:
            raise CatalogError(str(p), "", "", "catalog file not found")
        return Catalog()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(str(p), "", "", f"is not valid TOML: {exc}") from None
    try:
        catalog = Catalog(CatalogModel.model_validate(data), str(p))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_CONTROLS:
            msg = control_message(err.get("input"))
        raise CatalogError(str(p), key, err.get("input"), msg) from None
    logo, folder = catalog.logo_path, catalog.templates_dir
    if logo is not None:
        if not logo.is_file():
            raise CatalogError(str(p), "company.logo", catalog.company.logo, f"file not found ({logo})")
        if logo.suffix.lower() not in LOGO_TYPES:
            raise CatalogError(str(p), "company.logo", catalog.company.logo,
                               f"must be one of {', '.join(sorted(LOGO_TYPES))}")
        catalog = Catalog(catalog.model, catalog.path, logo.read_bytes())
    if folder is not None and not folder.is_dir():
        raise CatalogError(str(p), "company.templates", catalog.company.templates, f"folder not found ({folder})")
    return catalog


LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
"""Logo file suffix -> media type."""
