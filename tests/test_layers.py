"""The package's layers: imports flow one way, commands -> library -> model core. Read from the
source (the ``from .x import`` lines), since importing any module runs the package's
``__init__``, which imports everything."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transformer_tiny"
# The model, and the few modules it is built from: the byte tokenizer and its own config.
CORE = {"model", "attention", "positions", "tokenizer", "model_config", "config_checks"}


def package_imports(module: str) -> set[str]:
    """The package's modules that ``module`` (a dotted name under the package) imports."""
    path = _source(module)
    here = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:  # from .x import y
            base = here[:len(here) - (node.level - 1)]
            target = ".".join(base + (node.module.split(".") if node.module else []))
        elif isinstance(node, ast.ImportFrom) and node.module:  # from transformer_tiny.x import y
            target = _inside(node.module)
        elif isinstance(node, ast.Import):  # import transformer_tiny.x
            found |= {m for a in node.names if (m := _inside(a.name)) and _is_module(m)}
            continue
        else:
            continue
        if target is None:
            continue
        names = [f"{target}.{a.name}" if target else a.name for a in node.names]
        found |= {n for n in [target, *names] if n and _is_module(n)}
    return found


def _inside(dotted: str) -> str | None:
    """``transformer_tiny.cli.common`` -> ``cli.common``; ``transformer_tiny`` -> ``""``; None
    for another package."""
    top, _, rest = dotted.partition(".")
    return rest if top == PACKAGE.name else None


def _source(module: str) -> Path:
    """The file of ``module``: ``x/y.py``, or ``x/y/__init__.py`` for a package."""
    base = PACKAGE.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_module(name: str) -> bool:
    return _source(name).is_file()


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


def test_the_import_reader_sees_every_form_of_import(tmp_path, monkeypatch):
    """The check above is only as good as its reader: on a made-up package, every way of
    importing a sibling module is seen, and nothing else."""
    fake = tmp_path / "transformer_tiny"
    (fake / "cli").mkdir(parents=True)
    for name in ("a", "b", "c", "d", "e", "f", "__init__", "cli/__init__"):
        (fake / f"{name}.py").write_text("")
    (fake / "core.py").write_text(
        "import os\nfrom transformer_tiny.a import x\nimport transformer_tiny.b\n"
        "from . import c\nfrom transformer_tiny import d\n"
        "def later():\n    from .e import y\n")
    (fake / "cli" / "common.py").write_text("from ..f import z\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert package_imports("core") == {"a", "b", "c", "d", "e"}
    assert package_imports("cli.common") == {"f"}
