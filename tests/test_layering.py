"""The import direction the tree promises (docs/architecture.md, "The tree").

The core is imported by everything and imports nothing of the project outside itself;
the shard runtime (gears/), the gateway (api/) and the loaders (loaders/) build on the
core only, never on each other or on the tooling; tooling and measurement may import
any of them. Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("qasearch", "gears", "api", "loaders")

# folder -> the project packages its modules may import (besides their own folder)
ALLOWED = {
    "qasearch/core": ("qasearch.core",),
    "gears": ("qasearch.core", "gears"),
    "api": ("qasearch.core", "api"),
    "loaders": ("qasearch.core", "loaders"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a project module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in PROJECT:  # `from qasearch import x`: the module is qasearch.x
                found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
            else:
                found.append((node.lineno, node.module))
    return [(line, m) for line, m in found if m.split(".")[0] in PROJECT]


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder} holds no modules"
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in files for line, module in imported_modules(path)
             if not _allowed(module, ALLOWED[folder])]
    assert wrong == [], "\n".join(wrong)


def test_the_shared_package_holds_only_its_parts():
    """qasearch/ itself keeps only the CLI entry points; everything else is in a part."""
    loose = sorted(p.name for p in (ROOT / "qasearch").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py"]
    parts = sorted(p.name for p in (ROOT / "qasearch").iterdir()
                   if p.is_dir() and p.name != "__pycache__")
    assert parts == ["bench", "cluster", "commands", "core", "training"]


def test_the_check_sees_a_wrong_import(tmp_path):
    """The parser finds the three forms an import can take, lazy ones included."""
    module = tmp_path / "m.py"
    module.write_text("from qasearch import bench\nimport api.fanout\n"
                      "def f():\n    from gears.worker import main\n")
    found = [m for _, m in imported_modules(module)]
    assert found == ["qasearch.bench", "api.fanout", "gears.worker"]
    assert not any(_allowed(m, ALLOWED["qasearch/core"]) for m in found)


def test_modules_stay_short():
    """About 400 lines at most, so that each module reads top-down in one sitting."""
    long = sorted(f"{p.relative_to(ROOT)}: {n} lines"
                  for folder in PROJECT for p in (ROOT / folder).rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > 420)
    assert long == [], long


def test_paths_found_from_a_modules_place_name_the_repositorys_folders():
    """A module that finds a folder from its own file names the right one after a move."""
    from dataclasses import fields

    from loaders.shipped_reader import SHIPPED_DIR
    from qasearch.bench.agreement import SAMPLE_QUESTIONS
    from qasearch.commands.bench import SAMPLE
    from qasearch.core.settings import Settings

    assert SAMPLE_QUESTIONS.is_file() and SAMPLE.is_dir() and SHIPPED_DIR.is_dir()
    defaults = {f.name: f.default for f in fields(Settings)}
    for name in ("data_dir", "run_dir"):
        assert Path(defaults[name]).parent == ROOT / "var", (name, defaults[name])
