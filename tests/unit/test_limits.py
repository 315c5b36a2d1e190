"""The size and layering limits of the definition of done, measured over the whole package.

(a) no module under ledger/ or reports/ over 600 lines (newline count, as ``wc -l``, plus an
    unterminated last line);
(b) no class over 300 lines and (c) no function or method over 80 lines: ``end_lineno - lineno
    + 1`` of the ``ast`` node, so from the ``class``/``def`` line to its last line, decorators NOT
    counted; nested functions count on their own and inside their parent;
(d) SQLAlchemy, SQLModel and psycopg imported only by modules under ledger/store/: every
    ``import``/``from .. import`` anywhere in a file (inside functions too), and
    ``importlib.import_module("..")``/``__import__("..")`` with a literal name (migrations/ is
    outside the package, so not scanned);
(e) no file tracked by git (``git ls-files``) mentions the old design document's name (upper-case
    stem, ``.md``; the current one is docs/design.md) or an issue number (``\\bissue \\d+``,
    case-insensitive). Binary files (holding a NUL byte) are not read, as ``grep -I``; no other
    file is excluded (tests/examples/golden/ holds no such text).

Each check reports every offender as ``path:line`` with its size. The checkers take the root
and the files, so ``test_each_check_catches_a_violation`` proves them on a synthetic tree.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "reports")
MODULE_LIMIT = 600
CLASS_LIMIT = 300
FUNCTION_LIMIT = 80
DB_LIBRARIES = ("sqlalchemy", "sqlmodel", "psycopg")
DB_PACKAGE = "ledger/store/"
OLD_DESIGN_DOC = "DESIGN" + ".md"  # spelled in two parts so that this file does not mention it
ISSUE_NUMBER = re.compile(r"\bissue \d+", re.IGNORECASE)


def package_files(root: Path) -> list[str]:
    """The Python files under ledger/ and reports/ of ``root``, as sorted posix paths relative to
    it (__pycache__ left out)."""
    return sorted(p.relative_to(root).as_posix() for package in PACKAGES for p in (root / package).rglob("*.py")
                  if "__pycache__" not in p.parts)


def line_count(text: str) -> int:
    """Lines of a file: its newlines (``wc -l``), plus one for an unterminated last line."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def long_modules(root: Path, files: list[str], limit: int = MODULE_LIMIT) -> list[str]:
    """"path:1 N lines" for every file of more than ``limit`` lines."""
    out = []
    for f in files:
        n = line_count((root / f).read_text(encoding="utf-8"))
        if n > limit:
            out.append(f"{f}:1 {n} lines")
    return out


def long_definitions(root: Path, files: list[str], kinds: tuple[type, ...], limit: int) -> list[str]:
    """"path:line name N lines" for every ``kinds`` node (ast.ClassDef, or ast.FunctionDef and
    ast.AsyncFunctionDef) spanning more than ``limit`` lines, decorators not counted."""
    out = []
    for f in files:
        tree = ast.parse((root / f).read_text(encoding="utf-8"), filename=f)
        for node in ast.walk(tree):
            if isinstance(node, kinds):
                size = node.end_lineno - node.lineno + 1
                if size > limit:
                    out.append(f"{f}:{node.lineno} {node.name} {size} lines")
    return sorted(out, key=_by_file_and_line)


def _imported_names(node: ast.AST) -> list[str]:
    """The absolute module names an import node (or a literal dynamic import call) loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.module and not node.level else []
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__"):
            return [node.args[0].value]
    return []


def db_imports_outside_store(root: Path, files: list[str]) -> list[str]:
    """"path:line imports X" for every import of a database library (DB_LIBRARIES and their
    submodules; psycopg2 and psycopg_* count as psycopg) in a file outside ledger/store/."""
    out = []
    for f in files:
        if f.startswith(DB_PACKAGE):
            continue
        tree = ast.parse((root / f).read_text(encoding="utf-8"), filename=f)
        for node in ast.walk(tree):
            for name in _imported_names(node):
                top = name.split(".")[0]
                if top in DB_LIBRARIES or top == "psycopg2" or top.startswith("psycopg_"):
                    out.append(f"{f}:{node.lineno} imports {name}")
    return sorted(out, key=_by_file_and_line)


def tracked_files(root: Path) -> list[str]:
    """The files git tracks in ``root`` (``git ls-files``), those present in the working tree."""
    names = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    return sorted(n for n in names.decode("utf-8").split("\0") if n and (root / n).is_file())


def forbidden_mentions(root: Path, files: list[str]) -> list[str]:
    """"path:line 'match'" for every mention of the old design document or of an issue number in
    a text file (binary files, holding a NUL byte, are skipped)."""
    out = []
    for f in files:
        data = (root / f).read_bytes()
        if b"\0" in data:
            continue
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            found = ([OLD_DESIGN_DOC] if OLD_DESIGN_DOC in line else []) + ISSUE_NUMBER.findall(line)
            out += [f"{f}:{n} {m!r}" for m in found]
    return out


def _by_file_and_line(entry: str) -> tuple[str, int]:
    path, _, rest = entry.partition(":")
    return path, int(rest.split(" ", 1)[0])


def _report(what: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {what}:\n" + "\n".join(offenders)


def test_no_module_over_600_lines():
    offenders = long_modules(ROOT, package_files(ROOT))
    assert not offenders, _report(f"module(s) over {MODULE_LIMIT} lines", offenders)


def test_no_class_over_300_lines():
    offenders = long_definitions(ROOT, package_files(ROOT), (ast.ClassDef,), CLASS_LIMIT)
    assert not offenders, _report(f"class(es) over {CLASS_LIMIT} lines", offenders)


def test_no_function_over_80_lines():
    offenders = long_definitions(ROOT, package_files(ROOT), (ast.FunctionDef, ast.AsyncFunctionDef), FUNCTION_LIMIT)
    assert not offenders, _report(f"function(s) over {FUNCTION_LIMIT} lines", offenders)


def test_database_libraries_only_in_store():
    offenders = db_imports_outside_store(ROOT, package_files(ROOT))
    assert not offenders, _report(f"import(s) of {', '.join(DB_LIBRARIES)} outside {DB_PACKAGE}", offenders)


def test_no_file_mentions_the_old_design_doc_or_an_issue_number():
    files = tracked_files(ROOT)
    offenders = forbidden_mentions(ROOT, files)
    assert len(files) > 100 and not offenders, _report("mention(s) of the old design document or an issue number",
                                                       offenders)


def _lines(n: int, first: str, body: str = "    x = 1") -> str:
    """``first`` followed by body lines: a definition of exactly n lines."""
    return first + "\n" + "\n".join([body] * (n - 1)) + "\n"


def test_each_check_catches_a_violation(tmp_path):
    """Every checker reports a deliberate violation on a synthetic tree, with its file, line and
    size, and lets through what is exactly at the limit."""
    files = {
        "ledger/at_limit.py": _lines(FUNCTION_LIMIT, "@decorated\ndef fine():")
        + "x = 0\n" * (MODULE_LIMIT - FUNCTION_LIMIT - 1),
        "ledger/too_long.py": "x = 0\n" * (MODULE_LIMIT + 1),
        "ledger/big.py": "\n" + _lines(FUNCTION_LIMIT + 1, "def big():")
        + "class Holder:\n" + _lines(FUNCTION_LIMIT + 1, "    async def method(self):", "        z = 3"),
        "ledger/classes.py": _lines(CLASS_LIMIT + 1, "class Big:", "    y = 2"),
        "reports/at_limit.py": _lines(CLASS_LIMIT, "class Ok:", "    y = 2"),
        "ledger/core/leak.py": "import json\n\n\ndef f():\n    import sqlalchemy.orm\n    from psycopg import sql\n"
        "    importlib.import_module('sqlmodel')\n    from .store import db\n    import sqlalchemy_utils_not_it\n",
        "reports/leak.py": "from sqlmodel import Session\n",
        "ledger/store/fine.py": "import sqlalchemy as sa\nfrom sqlmodel import Session\nimport psycopg\n",
        "docs/notes.md": "See docs/design.md §3.\nSee " + OLD_DESIGN_DOC + " and Issue " + "42, not issue-7.\n",
        "tests/examples/golden/blob.bin": "issue " + "9\0",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    py = package_files(tmp_path)
    assert py == sorted(n for n in files if n.endswith(".py"))

    assert long_modules(tmp_path, py) == [f"ledger/too_long.py:1 {MODULE_LIMIT + 1} lines"]
    assert long_definitions(tmp_path, py, (ast.ClassDef,), CLASS_LIMIT) == [
        f"ledger/classes.py:1 Big {CLASS_LIMIT + 1} lines"]
    assert long_definitions(tmp_path, py, (ast.FunctionDef, ast.AsyncFunctionDef), FUNCTION_LIMIT) == [
        f"ledger/big.py:2 big {FUNCTION_LIMIT + 1} lines",
        f"ledger/big.py:{FUNCTION_LIMIT + 4} method {FUNCTION_LIMIT + 1} lines"]
    assert db_imports_outside_store(tmp_path, py) == [
        "ledger/core/leak.py:5 imports sqlalchemy.orm", "ledger/core/leak.py:6 imports psycopg",
        "ledger/core/leak.py:7 imports sqlmodel", "reports/leak.py:1 imports sqlmodel"]
    assert forbidden_mentions(tmp_path, sorted(files)) == [
        f"docs/notes.md:2 {OLD_DESIGN_DOC!r}", "docs/notes.md:2 'Issue " + "42'"]
