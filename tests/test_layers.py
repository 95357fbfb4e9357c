"""The layer rules of docs/architecture.md that import-linter cannot see.

The contracts in pyproject.toml (run by .ci/gate) check every import our own
modules make, at any depth and inside functions too. Two rules are about what
actually gets loaded, which a static graph does not show: a third-party
library that core imports must not drag in Qt or torch, and the GUI must not
load torch when its modules are imported (start-up time), although its
functions may, through the engine, once a model is needed."""

import re
import subprocess
import sys
from pathlib import Path

import ftstudio

PKG = Path(ftstudio.__file__).parent


def _modules(sub: str) -> list[str]:
    return [
        "ftstudio." + ".".join(p.relative_to(PKG).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((PKG / sub).rglob("*.py"))
    ]


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {line.split(".")[0] for line in out.stdout.split()}


def test_core_imports_neither_qt_nor_torch():
    loaded = _imported_after(_modules("core"))
    assert not loaded & {"PySide6", "pyqtgraph", "shiboken6", "torch", "transformers", "peft"}


def test_gui_does_not_import_torch_at_module_level():
    mods = _modules("gui")
    if not mods:
        return
    loaded = _imported_after(mods)
    assert not loaded & {"torch", "transformers", "peft", "bitsandbytes", "accelerate"}


def test_no_sql_outside_core():
    """The database is core's: pages, the engine and the CLI ask Project's named queries."""
    sql = re.compile(r"\b(SELECT .* FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b|\.execute\(")
    offenders = [
        f"{path.relative_to(PKG.parent)}:{n}"
        for path in sorted(PKG.rglob("*.py"))
        if path.relative_to(PKG).parts[0] != "core"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if sql.search(line)
    ]
    assert offenders == []
