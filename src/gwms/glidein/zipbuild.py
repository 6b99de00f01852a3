"""Build ``gwms-startd.pyz``: the startd agent as one file for worker nodes.

The archive holds ``gwms/__init__.py`` (a stub: the rest of gwms is not shipped) and
every module of ``gwms/glidein``; its ``__main__`` calls :func:`gwms.glidein.startd.main`,
so ``python3 gwms-startd.pyz run --collector URL --token FILE ...`` runs the agent with
nothing but the standard library (Python >= 3.9).
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INTERPRETER = "/usr/bin/env python3"
ENTRY_POINT = "gwms.glidein.startd:main_exit"

_STUB = '"""gwms, as shipped in the startd zipapp: only gwms.glidein is present."""\n'


def shipped_modules(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of ``gwms.glidein`` that go into the zipapp."""
    return sorted(p for p in package_dir.glob("*.py") if p.is_file())


def build_zipapp(out: Path, *, package_dir: Path = PACKAGE_DIR, compressed: bool = True) -> Path:
    """Write the zipapp to ``out`` (made executable) and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gwms-zipapp-") as tmp:
        root = Path(tmp) / "app"
        pkg = root / "gwms" / "glidein"
        pkg.mkdir(parents=True)
        (root / "gwms" / "__init__.py").write_text(_STUB)
        for src in shipped_modules(package_dir):
            shutil.copy2(src, pkg / src.name)
        zipapp.create_archive(root, target=out, interpreter=INTERPRETER, main=ENTRY_POINT, compressed=compressed)
    return out
