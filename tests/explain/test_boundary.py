"""houseprice.explain is generic: it never imports another houseprice subpackage."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import houseprice.explain

PACKAGE_DIR = Path(houseprice.explain.__file__).parent
ALLOWED_THIRD_PARTY = {
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "sklearn",
    "safetensors",
    "tqdm",
    "faiss",  # optional: imported lazily, scikit-learn fallback
}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                found.append((node.lineno, node.module or ""))
                continue
            package = ["houseprice", "explain"][: 2 - (node.level - 1)]  # modules live in explain/
            if node.module:
                found.append((node.lineno, ".".join([*package, node.module])))
            else:
                found.extend((node.lineno, ".".join([*package, a.name])) for a in node.names)
    return found


def test_modules_import_only_allowed_packages() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) >= 5, f"expected the explain modules under {PACKAGE_DIR}"
    allowed = ALLOWED_THIRD_PARTY | set(sys.stdlib_module_names)
    offenders = []
    for path in modules:
        for line, name in _imported_modules(path):
            top = name.split(".")[0]
            if name == "houseprice.explain" or name.startswith("houseprice.explain."):
                continue
            if top == "houseprice" or top not in allowed:
                offenders.append(f"{path.relative_to(PACKAGE_DIR.parent.parent)}:{line} {name}")
    assert not offenders, "houseprice.explain imports outside its boundary:\n" + "\n".join(
        offenders
    )


def test_import_loads_no_other_houseprice_subpackage() -> None:
    code = (
        "import sys, houseprice.explain\n"
        "bad = sorted(m for m in sys.modules if m.startswith('houseprice.')"
        " and not (m == 'houseprice.explain' or m.startswith('houseprice.explain.')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip()
    assert loaded == "", (
        f"importing houseprice.explain loaded {loaded}; the houseprice package __init__ or an "
        "explain module imports another subpackage"
    )


def test_ast_check_detects_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from houseprice.vision import model\nfrom .. import data\n", encoding="utf-8")
    names = [name for _, name in _imported_modules(bad)]
    assert names == ["houseprice.vision", "houseprice.data"]
