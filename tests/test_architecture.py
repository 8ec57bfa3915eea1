"""Packaging and layering checks (STYLE.md section 6 and the one-way flow of DESIGN.md)."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pigment_connect"


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {"pigment_connect"} | {
        "pigment_connect." + ".".join(p.parent.relative_to(PACKAGE).parts)
        for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE
    }
    tree |= {"pigment_connect.cli", "pigment_connect.atlases"}
    assert listed == tree


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules imported by ``path`` (relative imports resolved)."""
    package = ["pigment_connect", *path.parent.relative_to(PACKAGE).parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            if not node.module:
                names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_library_never_imports_the_cli_and_stages_never_import_later_stages():
    order = ["io", "fit", "track", "connectome", "graph", "report", "pipeline"]
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        imports = _imports(path)
        assert not any(name.startswith("pigment_connect.cli") for name in imports), path
        if rel[0] in order:
            later = order[order.index(rel[0]) + 1:]
            for name in imports:
                parts = name.split(".")
                assert not (parts[0] == "pigment_connect" and len(parts) > 1 and parts[1] in later), (
                    f"{path} imports a later stage: {name}")
