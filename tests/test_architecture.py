"""The layout is the pipeline: imports go one way, modules stay small, no code hides in strings.

    errors ← language ← symbolic ← {render, emit} ← layer ← verify ← api ← {cli, torch}
    runtime: jax and numpy only, nothing from the rest of symift

Every import counts, function-local ones included (an import cycle hidden in a function is
still a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "symift"

#: The layer of each module or subpackage; a module may import its own layer and lower ones.
LAYERS = {"errors": 0, "language": 1, "symbolic": 2, "render": 3, "emit": 3, "layer": 4, "verify": 5,
          "api": 6, "__init__": 7, "cli": 7, "torch": 7}
MAX_LINES = 600


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list:
    """(module imported, names) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (base + "." + node.module if node.module else base) if node.level else node.module
            if target == "symift":  # `from . import runtime`: the subpackage itself
                out += [(f"symift.{a.name}", ()) for a in node.names]
            else:
                out.append((target, tuple(a.name for a in node.names)))
    return out


def layer_of(name: str):
    parts = name.split(".")
    if parts[0] != "symift":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def test_imports_go_down_the_pipeline_only():
    bad = []
    for path in modules():
        me = layer_of(dotted(path))
        for target, _ in imports(path):
            if me == "runtime":
                if target.startswith("symift") and not target.startswith("symift.runtime"):
                    bad.append(f"{dotted(path)} imports {target}: the runtime imports nothing from symift")
                continue
            other = layer_of(target)
            if other is None:
                continue
            if other == "runtime":
                continue  # a leaf every layer may use
            if LAYERS[other] > LAYERS[me] or (LAYERS[other] == LAYERS[me] and other != me):
                bad.append(f"{dotted(path)} ({me}) imports {target} ({other})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    names = {dotted(p): p for p in modules()}
    graph = {}
    for name, path in names.items():
        deps = set()
        for target, imported in imports(path):
            if target in names:
                deps |= {f"{target}.{n}" if f"{target}.{n}" in names else target for n in imported or ("",)}
        graph[name] = deps - {name}
    state, stack = {}, []

    def visit(n):
        state[n] = "active"
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == "active":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_no_private_name_crosses_a_module_boundary():
    bad = [f"{dotted(p)}: from {t} import {n}" for p in modules() for t, names in imports(p) for n in names
           if n.startswith("_") and t.startswith("symift")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size_and_no_code_in_strings(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name} has {len(text.splitlines())} lines"
    for node in ast.parse(text).body:  # module-level string constants holding code
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Constant) \
                and isinstance(value.value, str):
            code = value.value
            assert code.count("\ndef ") + code.count("\nclass ") < 2, f"code in a string in {path.name}"
