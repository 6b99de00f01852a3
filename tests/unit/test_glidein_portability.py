"""gwms.glidein ships alone to worker nodes: standard library only, Python >= 3.9."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import gwms.glidein
from gwms.glidein import attributes as GA
from gwms.pool import jobattrs as JA

PACKAGE = Path(gwms.glidein.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
STDLIB = set(sys.stdlib_module_names)
# standard-library APIs newer than Python 3.9
TOO_NEW = {
    ("itertools", "pairwise"), ("itertools", "batched"), ("typing", "TypeAlias"), ("typing", "ParamSpec"),
    ("typing", "Self"), ("typing", "TypeGuard"), ("typing", "Never"), ("typing", "assert_never"),
    ("datetime", "UTC"), ("enum", "StrEnum"), ("tomllib", None), ("contextlib", "chdir"),
}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_parses_as_python_39(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    for node in ast.walk(tree):
        assert type(node).__name__ not in ("Match", "TryStar"), f"{path.name}: {type(node).__name__} needs Python >= 3.10"
        if isinstance(node, ast.Call) and any(kw.arg == "strict" for kw in node.keywords):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            assert name != "zip", f"{path.name}:{node.lineno}: zip(strict=) needs Python >= 3.10"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "dataclass" or (
                isinstance(func, ast.Attribute) and func.attr == "dataclass"
            ):
                assert not any(kw.arg in ("slots", "kw_only") for kw in node.keywords), f"{path.name}: dataclass(slots/kw_only)"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            assert not any(isinstance(a, ast.BinOp) for a in node.args), f"{path.name}:{node.lineno}: isinstance(x, A | B)"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name not in ("__init__.py", "version.py", "__main__.py")], ids=lambda p: p.name)
def test_annotations_are_postponed(path: Path) -> None:
    # `X | None` in annotations only works on 3.9 when annotations are not evaluated
    assert "from __future__ import annotations" in path.read_text(), path.name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_stdlib_and_glidein(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        mods: list[tuple[str, list[str]]] = []
        if isinstance(node, ast.Import):
            mods = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute gwms.glidein imports"
            mods = [(node.module or "", [a.name for a in node.names])]
        for mod, names in mods:
            top = mod.split(".")[0]
            if top == "gwms":
                assert mod == "gwms.glidein" or mod.startswith("gwms.glidein."), f"{path.name} imports {mod}"
            else:
                assert top in STDLIB or top == "__future__", f"{path.name} imports {mod}, not in the standard library"
            for name in names:
                assert (top, name) not in TOO_NEW and (top, None) not in TOO_NEW, f"{path.name}: {mod}.{name} is too new"


def test_attribute_names_agree_with_the_pool() -> None:
    shared = [n for n in dir(GA) if n.isupper() and hasattr(JA, n)]
    assert len(shared) > 30
    for name in shared:
        assert getattr(GA, name) == getattr(JA, name), name
