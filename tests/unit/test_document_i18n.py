"""Document translations (reports/i18n.py): the catalogs are complete, current and keep every
placeholder; the customer's locale picks the language; dates share one style per locale."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from reports.i18n import LANGUAGES, LOCALE_DIR, document_language, format_day, format_span, translations

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{[a-z_]+\}|%\([a-z_]+\)s")


def _template_ids() -> set[str]:
    with (LOCALE_DIR / "messages.pot").open("rb") as fh:
        return {m.id for m in read_po(fh) if m.id}


def test_the_template_holds_exactly_the_messages_the_code_marks():
    """messages.pot is current: `make i18n` would not change its message ids."""
    method_map = [("reports/documents.py", "python"), ("reports/lines.py", "python"),
                  ("reports/templates/document.html", "jinja2")]
    options = {"reports/templates/document.html": {"extensions": "jinja2.ext.i18n"}}
    found = {msg for _file, _line, msg, _comments, _context in
             extract_from_dir(str(ROOT), method_map, options_map=options)}
    assert found == _template_ids()


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_message_is_translated_with_the_same_placeholders(language):
    """Each .po translates every message of the template and keeps its placeholders."""
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    strings = {m.id: m.string for m in catalog if m.id}
    assert set(strings) == _template_ids()
    for msgid, msgstr in strings.items():
        assert msgstr, (language, msgid)
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(msgstr)), (language, msgid, msgstr)


def test_the_customers_locale_picks_the_language():
    """de_DE -> de, fr-CA -> fr, ja_JP -> ja; an unknown language or locale falls back to English."""
    assert [document_language(x) for x in ("de_DE", "fr-CA", "ja_JP", "es_MX", "pt_BR", "", None, "xx_??")] == \
        ["de", "fr", "ja", "es", "en", "en", "en", "en"]
    assert translations("de").gettext("Credit note") == "Gutschrift"
    assert translations("es").gettext("Credit note") == "Factura rectificativa"
    assert translations("ja").gettext("Invoice") == "請求書"
    assert translations("en").gettext("Invoice") == "Invoice"


def test_dates_and_spans_share_one_style_per_locale():
    """A single day and a span print the same way (CLDR skeleton yMMMd)."""
    oct1, oct31, sep30 = date(2026, 10, 1), date(2026, 10, 31), date(2027, 9, 30)
    assert format_day(oct1, "en_US") == "Oct 1, 2026"
    assert format_span(oct1, oct31, "en_US") == "Oct 1\u2009–\u200931, 2026"  # CLDR's thin spaces
    assert format_span(oct1, sep30, "en_US") == "Oct 1, 2026\u2009–\u2009Sep 30, 2027"
    assert format_day(oct1, "de_DE") == "1. Okt. 2026"
    assert format_span(oct1, oct31, "de_DE") == "1.–31. Okt. 2026"
    assert format_day(oct1, "ja_JP") == "2026年10月1日"
    assert format_span(oct1, oct1, "fr_FR") == format_day(oct1, "fr_FR") == "1 oct. 2026"
