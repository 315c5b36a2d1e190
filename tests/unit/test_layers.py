"""The layers hold: the accounting core imports no database library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = sorted(p for p in (Path(__file__).resolve().parents[2] / "ledger" / "core").rglob("*.py"))


def test_the_core_imports_no_database_library():
    """Importing every module of ledger.core loads neither SQLAlchemy, SQLModel nor psycopg."""
    modules = ["ledger." + ".".join(p.relative_to(CORE[0].parents[1]).with_suffix("").parts).removesuffix(".__init__")
               for p in CORE]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert len(modules) > 20 and out == "[]"
