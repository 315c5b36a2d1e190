"""Build the bundled Japanese document fonts (Ledger Sans JP) from Noto Sans CJK JP; see README.md.

Usage (from the repository root, with Debian's fonts-noto-cjk 1:20220127+repack1-1 installed or
extracted)::

    .venv/bin/python reports/static/fonts/make_subset_jp.py /usr/share/fonts/opentype/noto

Reads face 0 (Noto Sans CJK JP) of NotoSansCJK-Regular.ttc and NotoSansCJK-Bold.ttc from that
folder, checks their SHA-256 (exit 1 on a mismatch), and writes LedgerSansJP-Regular.otf and
LedgerSansJP-Bold.otf next to this script: OpenType (CFF) subsets with the code points of
`codepoints()` (ASCII, CJK punctuation, kana, full-width forms, the 2,965 kanji of JIS X 0208
level 1 and every character of the Japanese message catalog), no hinting, renamed "Ledger Sans
JP" (a modified font should not carry the "Noto" trademark). Deterministic: the same inputs
give byte-identical outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from make_subset import build_all, rename  # the Latin fonts' script, beside this one

HERE = Path(__file__).resolve().parent
CATALOG = HERE.parent.parent / "locale" / "ja" / "LC_MESSAGES" / "messages.po"

SOURCES = {
    # output: (input collection, SHA-256 as shipped in fonts-noto-cjk 1:20220127+repack1-1)
    "LedgerSansJP-Regular.otf": (
        "NotoSansCJK-Regular.ttc",
        "b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a",
    ),
    "LedgerSansJP-Bold.otf": (
        "NotoSansCJK-Bold.ttc",
        "faa5f3656a78b2e2d450d27fe8382c778bc2b6bb5ea29c986664a6a435056ceb",
    ),
}

FAMILY = "Ledger Sans JP"


def jis_level1_kanji() -> list[int]:
    """The 2,965 kanji of JIS X 0208 level 1 (EUC-JP rows 16-47), the common kanji of Japanese."""
    out = []
    for row in range(0xB0, 0xD0):
        for cell in range(0xA1, 0xFF):
            try:
                out.append(ord(bytes((row, cell)).decode("euc_jp")))
            except UnicodeDecodeError:
                pass
    return out


def codepoints() -> list[int]:
    """Every code point the subset keeps (those the source lacks are skipped)."""
    points = {
        *range(0x0020, 0x007F),  # ASCII, for mixed text
        0x00A0, 0x00A5, 0x00D7, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2026, 0x2212,
        *range(0x3000, 0x3040),  # CJK symbols and punctuation (、。「」〜 …)
        *range(0x3040, 0x30A0),  # hiragana
        *range(0x30A0, 0x3100),  # katakana
        *range(0x31F0, 0x3200),  # katakana phonetic extensions
        *range(0xFF01, 0xFFA0),  # full-width ASCII, half-width katakana
        0xFFE0, 0xFFE1, 0xFFE5,  # ￠ ￡ ￥
        0x5186,  # 円
        *jis_level1_kanji(),
    }
    if CATALOG.is_file():
        points.update(ord(c) for c in CATALOG.read_text(encoding="utf-8") if ord(c) >= 0x2E80)
    return sorted(points)


def build(source: Path, target: Path) -> None:
    """Subset face 0 (JP) of the collection ``source`` into ``target``."""
    font = TTFont(source, fontNumber=0, recalcTimestamp=False)
    weight = "Bold" if font["OS/2"].usWeightClass >= 700 else "Regular"
    options = subset.Options()
    options.layout_features = ["kern", "palt", "vert", "locl", "ccmp", "halt"]
    options.hinting = False
    options.drop_tables += ["DSIG", "VORG", "vhea", "vmtx"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.recalc_timestamp = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=codepoints())
    subsetter.subset(font)
    postscript = f"LedgerSansJP-{weight}"
    rename(font, FAMILY, weight, postscript, "Noto Sans CJK JP 2.004 (fonts-noto-cjk 1:20220127+repack1-1)")
    cff = font["CFF "].cff
    cff.fontNames = [postscript]
    font.save(target, reorderTables=True)


if __name__ == "__main__":
    raise SystemExit(build_all(sys.argv, SOURCES, build, __doc__))
