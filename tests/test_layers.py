"""The package's layers: imports flow one way, commands -> library -> model core. Read from the
source (the ``from .x import`` lines), since importing any module runs the package's
``__init__``, which imports everything."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transformer_tiny"
# The model, and the few modules it is built from: the byte tokenizer and its own config.
CORE = {"model", "attention", "positions", "tokenizer", "model_config", "config_checks"}


def package_imports(module: str) -> set[str]:
    """The package's modules that ``module`` (a dotted name under the package) imports."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    here = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = here[:len(here) - (node.level - 1)]
            target = ".".join(base + (node.module.split(".") if node.module else []))
            names = [f"{target}.{a.name}" if target else a.name for a in node.names]
            found |= {n for n in [target, *names] if n and _is_module(n)}
    return found


def _is_module(name: str) -> bool:
    return PACKAGE.joinpath(*name.split(".")).with_suffix(".py").is_file()


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for dep in package_imports(todo.pop()) - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_model_core_imports_only_the_core():
    for module in CORE:
        assert closure(module) <= CORE, (module, sorted(closure(module) - CORE))


def test_the_library_never_imports_the_commands():
    library = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__"]
    for module in library:
        assert not {m for m in closure(module) if m.startswith("cli")}, module
    assert closure("cli.train") & {"train_eval", "config"}  # the check sees what commands use
