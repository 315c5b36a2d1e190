"""Render invoices and credit notes (`reports.views.DocumentView`) to HTML and PDF.

The Jinja template only lays out the already formatted view. WeasyPrint turns the HTML into
PDF with a URL fetcher that serves nothing but the files bundled in ``reports/static/``: no
network, no other files, no ``data:`` URLs, whatever text a customer managed to put in a name
or an address (which autoescape prints literally anyway).

Determinism: two renders of the same view are byte-identical except for the PDF
``/CreationDate`` and ``/ModDate``, which are the current UTC time, or the time given by
``SOURCE_DATE_EPOCH`` (https://reproducible-builds.org/specs/source-date-epoch/) when set.
WeasyPrint 70 does not read that variable itself; `render_document_pdf` stamps the dates.

Example::

    from reports.pdf import render_document_pdf
    render_document_pdf(view, "INV-2026-000001.pdf")   # -> PosixPath('INV-2026-000001.pdf')
"""

from __future__ import annotations

import mimetypes
import os
import pathlib
from datetime import UTC, datetime
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pydyf
from jinja2 import Environment, PackageLoader, StrictUndefined
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from reports.views import DocumentView

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
"""The only directory whose files a rendered document may load (stylesheet, later fonts)."""

_TEMPLATES = Environment(
    loader=PackageLoader("reports", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)

_FONT_CONFIG = FontConfiguration()
"""Shared Fontconfig configuration: system fonts are scanned once per process, not per render."""


class ResourceRefusedError(ValueError):
    """A document asked for a resource outside ``reports/static/``; ``url`` is what it asked."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refused to fetch {url!r}: {reason}")
        self.url = url
        self.reason = reason


class StaticAssetFetcher(URLFetcher):
    """WeasyPrint URL fetcher that serves only regular files inside `STATIC_DIR`.

    Accepts ``file:`` URLs (empty host or ``localhost``) whose path, after resolving symlinks
    and ``..``, is a file inside `STATIC_DIR`. Anything else (http, https, ftp, data, a file
    elsewhere, a directory, a missing file) raises `ResourceRefusedError`; WeasyPrint logs the
    error and renders the document without that resource.
    """

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        """Return the bundled file at ``url``; raise `ResourceRefusedError` for anything else."""
        path = static_path(url)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), body=path.read_bytes(), headers={"Content-Type": content_type}
        )


def static_path(url: str) -> pathlib.Path:
    """Map a ``file:`` URL to a resolved file path inside `STATIC_DIR`.

    raises ResourceRefusedError if the scheme is not ``file``, the host is not local, or the
    resolved path is not an existing regular file inside `STATIC_DIR`.
    """
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ResourceRefusedError(url, f"malformed URL ({error})") from None
    if parts.scheme.lower() != "file":
        raise ResourceRefusedError(url, f"scheme {parts.scheme or '(none)'!r} is not allowed")
    if parts.netloc not in ("", "localhost"):
        raise ResourceRefusedError(url, f"host {parts.netloc!r} is not local")
    path = pathlib.Path(url2pathname(parts.path)).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise ResourceRefusedError(url, f"{path} is not a file inside {STATIC_DIR}")
    return path


safe_fetcher: StaticAssetFetcher = StaticAssetFetcher(allowed_protocols=("file",))
"""The fetcher every render uses; looked up at call time so tests can wrap it."""


def render_document_html(view: DocumentView) -> str:
    """Lay out ``view`` as a standalone HTML document (str) using ``templates/document.html``.

    Relative URLs in the result (the stylesheet ``document.css``) resolve against `STATIC_DIR`.
    Every string of the view is HTML-escaped. Deterministic: no clock, no environment.
    raises jinja2.UndefinedError if ``view`` lacks a field the template uses.
    """
    return _TEMPLATES.get_template("document.html").render(view=view)


def render_document_pdf(view: DocumentView, out: str | os.PathLike[str]) -> pathlib.Path:
    """Render ``view`` as an A4 PDF written to ``out``; return ``out`` as a `pathlib.Path`.

    Resources load only from `STATIC_DIR` (see `StaticAssetFetcher`). The PDF creation and
    modification dates are ``SOURCE_DATE_EPOCH`` (integer seconds since 1970-01-01 UTC) when
    that variable is set, else the current UTC time; everything else depends only on ``view``.
    raises ValueError if SOURCE_DATE_EPOCH is set but not a non-negative integer;
    OSError if ``out`` cannot be written (its parent folder must exist).
    """
    stamp = _pdf_date(_document_time())
    html = HTML(
        string=render_document_html(view), base_url=STATIC_DIR, url_fetcher=safe_fetcher
    )

    def stamp_dates(_document: object, pdf: pydyf.PDF) -> None:
        pdf.info["CreationDate"] = pydyf.String(stamp)
        pdf.info["ModDate"] = pydyf.String(stamp)

    data = html.write_pdf(font_config=_FONT_CONFIG, finisher=stamp_dates)
    target = pathlib.Path(out)
    target.write_bytes(data)
    return target


def _document_time() -> datetime:
    """``SOURCE_DATE_EPOCH`` as an aware UTC datetime if set, else now (UTC, whole seconds)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return datetime.now(UTC).replace(microsecond=0)
    if not raw.isdigit():
        raise ValueError(
            f"SOURCE_DATE_EPOCH must be a non-negative integer of seconds, got {raw!r}"
        )
    return datetime.fromtimestamp(int(raw), UTC)


def _pdf_date(moment: datetime) -> str:
    """PDF date string (ISO 32000-1 section 7.9.4) for an aware UTC datetime: D:YYYYMMDDHHmmSSZ."""
    return moment.strftime("D:%Y%m%d%H%M%SZ")
