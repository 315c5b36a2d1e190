"""The catalog (`ledger.toml`, docs/design.md §8.3): the company, the rate card, plans and top-up packs.

Validated on load; a bad catalog raises CatalogError naming the file, the key and the value.
Without a catalog file (or without its ``[company]`` table) there is no seller: reports and
verify work (periods in UTC), but nothing that issues an invoice or credit note may run
(`Catalog.require_company`); ``ledger init --catalog FILE`` writes a starter catalog
(`ledger.services.setup.STARTER_CATALOG`).
"""

from __future__ import annotations

import json
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


class CatalogModel(_Strict):
    company: Company | None = None
    rate_card: dict[str, int] = Field(default_factory=dict)
    plans: dict[str, Plan] = Field(default_factory=dict)
    topups: dict[str, TopupPack] = Field(default_factory=dict)

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
