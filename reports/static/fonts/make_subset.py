"""Build the bundled document fonts (Ledger Sans) from Noto Sans 2.004; see README.md here.

Usage (from the repository root, after extracting Debian's fonts-noto-core 20201225-1)::

    .venv/bin/python reports/static/fonts/make_subset.py /tmp/noto/usr/share/fonts/truetype/noto

Reads NotoSans-Regular.ttf and NotoSans-Bold.ttf from that folder, checks their SHA-256
against the values below (exit 1 on a mismatch, so the result is reproducible), and writes
LedgerSans-Regular.ttf and LedgerSans-Bold.ttf next to this script. Each output is a TrueType
subset with: the code points in `CODEPOINTS`, no hinting instructions, the OpenType features
in `FEATURES`, U+2212 MINUS SIGN mapped to the figure-dash glyph (Noto Sans 2.004 has no minus
glyph; the figure dash has the width of a tabular digit), and renamed families ("Ledger Sans",
because a modified font should not carry the "Noto" trademark). Deterministic: the head
table's dates are fixed to the source's, so the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

HERE = Path(__file__).resolve().parent

SOURCES = {
    # output file: (input file, SHA-256 of the input as shipped in fonts-noto-core 20201225-1)
    "LedgerSans-Regular.ttf": (
        "NotoSans-Regular.ttf",
        "89c3c497f618fdaa0b2d1e98fef93582f28c71debd2c4a8cdf41f190ced2909d",
    ),
    "LedgerSans-Bold.ttf": (
        "NotoSans-Bold.ttf",
        "e83493c945848ecd4a9ad0f6d19164541a0d3e23a9c952304a00a46e00272ac5",
    ),
}

FAMILY = "Ledger Sans"

CODEPOINTS: tuple[int, ...] = (
    *range(0x0020, 0x007F),  # Basic Latin
    *range(0x00A0, 0x0100),  # Latin-1 Supplement (NBSP, ¢ £ ¤ ¥, ·, soft hyphen, accents)
    *range(0x0100, 0x0180),  # Latin Extended-A
    0x0192,  # ƒ
    *range(0x0218, 0x021C),  # Ș ș Ț ț (Romanian)
    0x02C6, 0x02C7, 0x02C9, *range(0x02D8, 0x02DE),  # spacing accents
    *range(0x0300, 0x0309), *range(0x030A, 0x030D), 0x0323, *range(0x0326, 0x0329),
    *range(0x2000, 0x2070),  # General Punctuation: spaces incl. U+202F, dashes, quotes, …
    *range(0x20A0, 0x20C0),  # Currency Symbols: € ₹ ₩ ₽ ₺ ₪ ₫ ₱ ₴ ₦ ₸ ₿ …
    0x2116, 0x2122,  # № ™
)
"""Code points kept from the source font (those it lacks are skipped), plus U+2212."""

FEATURES = ["kern", "mark", "mkmk", "ccmp", "locl", "tnum", "lnum", "pnum", "case"]
"""OpenType layout features kept (no ligatures: text copied from the PDF stays plain)."""

MINUS_SIGN = 0x2212
FIGURE_DASH = 0x2012


def build(source: Path, target: Path) -> None:
    """Subset ``source`` (a Noto Sans TTF) into ``target``; see the module docstring."""
    font = TTFont(source, recalcTimestamp=False)
    created, modified = font["head"].created, font["head"].modified
    weight = "Bold" if font["OS/2"].usWeightClass >= 700 else "Regular"

    options = subset.Options()
    options.layout_features = FEATURES
    options.hinting = False
    options.drop_tables += ["DSIG"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.recalc_timestamp = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=CODEPOINTS)
    subsetter.subset(font)

    for table in font["cmap"].tables:
        if table.isUnicode() and FIGURE_DASH in table.cmap:
            table.cmap[MINUS_SIGN] = table.cmap[FIGURE_DASH]

    postscript = f"LedgerSans-{weight}"
    rename(font, FAMILY, weight, postscript, "Noto Sans 2.004 (fonts-noto-core 20201225-1)")

    font["head"].created, font["head"].modified = created, modified
    font.save(target, reorderTables=True)


def rename(font: TTFont, family: str, weight: str, postscript: str, origin: str) -> None:
    """Name ``font`` ``family`` ``weight`` (name IDs 1-6, Windows and Mac platforms; the typographic
    family names 16, 17, 21 and 22 removed), saying it is a subset of ``origin``."""
    names = {
        1: family,
        2: weight,
        3: f"2.004;credit-ledger;{postscript}",
        4: f"{family} {weight}",
        5: f"Version 2.004; subset of {origin}",
        6: postscript,
    }
    name_table = font["name"]
    for name_id in (16, 17, 21, 22):
        name_table.removeNames(nameID=name_id)
    for name_id, text in names.items():
        name_table.removeNames(nameID=name_id)
        name_table.setName(text, name_id, 3, 1, 0x409)
        name_table.setName(text, name_id, 1, 0, 0)


def build_all(argv: list[str], sources: dict[str, tuple[str, str]], build, usage: str) -> int:
    """Build every output of ``sources`` ({output: (input file, its SHA-256)}) from the folder
    ``argv[1]`` with ``build(source, target)``, next to this script; return the exit code
    (2: wrong arguments, 1: an input whose SHA-256 differs)."""
    if len(argv) != 2:
        print(usage, file=sys.stderr)
        return 2
    folder = Path(argv[1])
    for output, (name, expected) in sources.items():
        source = folder / name
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if digest != expected:
            print(f"{source}: SHA-256 {digest}, expected {expected}", file=sys.stderr)
            return 1
        target = HERE / output
        build(source, target)
        size = target.stat().st_size
        sha = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"{target.name}: {size} bytes, sha256 {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(build_all(sys.argv, SOURCES, build, __doc__))
