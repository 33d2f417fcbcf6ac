"""The package's layers import downward only, and nothing in houseprice/ or cli/ forms a cycle.

Layer order (README, "Library layout"):

    leaves (errors, artifacts, profiles, runtime)
      -> data, synth            (synth may import data; data never imports synth)
      -> vision, pricing, explain, maps   (peers: none imports another)
      -> valuation, bench       (bench may import valuation, never the reverse)
      -> jobs -> cli

Every import counts, including ones inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency. ``houseprice.explain`` additionally imports nothing of houseprice
(tests/explain/test_boundary.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Rank of each top-level group; a module may import groups of strictly lower rank, its own
#: group, and the pairs in ALLOWED_PEERS.
RANK = {
    "houseprice": 0,  # the package root: __version__ only
    "houseprice.errors": 0,
    "houseprice.artifacts": 0,
    "houseprice.profiles": 0,
    "houseprice.runtime": 0,
    "houseprice.data": 1,
    "houseprice.synth": 1,
    "houseprice.vision": 2,
    "houseprice.pricing": 2,
    "houseprice.explain": 2,
    "houseprice.maps": 2,
    "houseprice.valuation": 3,
    "houseprice.bench": 3,
    "houseprice.jobs": 4,
    "cli": 5,
}
ALLOWED_PEERS = {
    ("houseprice.synth", "houseprice.data"),
    # the pricing benchmark measures the valuation model (valuation never imports bench)
    ("houseprice.bench", "houseprice.valuation"),
    # leaves may use each other (the cycle check below still applies)
    *{(a, b) for a in RANK for b in RANK if RANK[a] == RANK[b] == 0},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    files = [*(ROOT / "houseprice").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    return {module_name(p): p for p in files}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of houseprice/cli that ``path`` imports (relative imports resolved)."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:  # ``import a.b.c`` where c is an attribute
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def group(name: str) -> str:
    best = max((g for g in RANK if name == g or name.startswith(g + ".")), key=len)
    return best


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        gs = group(src)
        for dst in targets:
            gd = group(dst)
            if gs == gd or (gs, gd) in ALLOWED_PEERS:
                continue
            if RANK[gd] >= RANK[gs]:
                bad.append(f"{src} imports {dst} ({gd} is not below {gs})")
    return sorted(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def package_graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def test_every_module_belongs_to_a_layer() -> None:
    stray = [m for m in all_modules() if not any(m == g or m.startswith(g + ".") for g in RANK)]
    assert not stray, f"modules outside the layer table (add them to RANK): {stray}"


def test_layers_import_downward_only() -> None:
    bad = layer_violations(package_graph())
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    graph = package_graph()
    graph["houseprice.pricing.metrics"] = {*graph["houseprice.pricing.metrics"], "houseprice.jobs"}
    assert any(
        "houseprice.pricing.metrics imports houseprice.jobs" in v for v in layer_violations(graph)
    )
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}
    assert find_cycle(graph) == ["a.x", "a.y", "a.z", "a.x"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from houseprice.vision import backbones\n", {"houseprice.vision.backbones"}),
        ("from ..maps import not_a_module\n", {"houseprice.maps"}),
        ("import houseprice.jobs\n", {"houseprice.jobs"}),
    ],
)
def test_import_parser_resolves_names(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    known = set(all_modules())
    assert imports_of(path, "houseprice.pricing.mod", known) == expected
