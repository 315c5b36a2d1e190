"""Message catalogs of customer documents: the customer's language, its translations, its dates.

Labels of invoices and credit notes are marked with ``_()`` (Python) and ``{% trans %}`` /
``_()`` (Jinja, `reports/templates/document.html`) and translated through gettext catalogs
kept as text in ``reports/locale/<lang>/LC_MESSAGES/messages.po``. The ``.po`` files are read
at run time with `babel.messages.pofile` and compiled in memory (no ``.mo`` file to build or
to get out of date). `make i18n` extracts the template (``messages.pot``) with pybabel and
updates every ``.po`` from it (see the Makefile).

`LANGUAGES` lists the languages shipped; `document_language` picks one from a customer's
locale (``de_DE`` -> ``de``; anything else -> ``en``). Dates on a document use one style per
language, `format_day` and `format_span` (CLDR skeleton ``yMMMd``: "Oct 1, 2026",
"1. Okt. 2026", "2026年10月1日"; "Oct 1 – 31, 2026").

Example::

    tr = translations("de")
    tr.gettext("Invoice")        # 'Rechnung'
    format_span(date(2026, 10, 1), date(2026, 10, 31), "de_DE")   # '1.–31. Okt. 2026'
"""

from __future__ import annotations

import functools
import io
from datetime import date
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_interval, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
"""``<lang>/LC_MESSAGES/messages.po`` for every language but English (the source language)."""

LANGUAGES = ("en", "de", "fr", "es", "ja")
"""Languages documents are printed in; English is the source text of every message."""

DATE_SKELETON = "yMMMd"
"""The one CLDR date skeleton of every date on a document (single dates and spans)."""


def document_language(locale: str | None) -> str:
    """The language of a customer's documents: the language part of ``locale`` ('de_DE',
    'fr-CA', 'ja') when it is in `LANGUAGES`, else 'en'."""
    if not locale:
        return "en"
    try:
        language = Locale.parse(locale.replace("-", "_")).language
    except (ValueError, UnknownLocaleError):
        return "en"
    return language if language in LANGUAGES else "en"


@functools.cache
def translations(language: str) -> NullTranslations:
    """gettext translations of ``language`` (one of `LANGUAGES`; English and unknown languages
    give the source text). Cached per process. raises OSError / babel errors on a broken .po."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.is_file():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def format_day(day: date, locale: str) -> str:
    """``day`` in the document style of ``locale`` (skeleton `DATE_SKELETON`): 'Oct 1, 2026'."""
    return format_skeleton(DATE_SKELETON, day, locale=locale)


def format_span(start: date, end: date, locale: str) -> str:
    """The inclusive span ``start``-``end`` in the same style: 'Oct 1 – 31, 2026',
    'Oct 1, 2026 – Sep 30, 2027'; a single day when start == end."""
    if start == end:
        return format_day(start, locale)
    return format_interval(start, end, DATE_SKELETON, locale=locale)


def format_month(period: str, locale: str) -> str:
    """A period 'YYYY-MM' as its month in the document style: 'Oct 2026', 'Okt. 2026', '2026年10月'."""
    year, month = map(int, period.split("-"))
    return format_skeleton("yMMM", date(year, month, 1), locale=locale)
