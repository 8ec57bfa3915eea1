"""Packaging and layering checks (STYLE.md section 6 and the one-way flow of DESIGN.md)."""

import ast
import functools
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


LAYERS = tomllib.loads((ROOT / "layers.toml").read_text())
CLI = ROOT / "cli"


def _module_of(path: Path) -> str:
    """The dotted module name of a source file (cli/ is installed as pigment_connect.cli)."""
    if path.is_relative_to(CLI):
        rel = ("cli", *path.relative_to(CLI).parts)
    else:
        rel = path.relative_to(PACKAGE).parts
    names = ["pigment_connect", *rel[:-1]]
    if rel[-1] != "__init__.py":
        names.append(rel[-1][:-3])
    return ".".join(names)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of ``path``, at any depth (function-level
    ones included), relative imports resolved; ``from X import name`` gives ``X.name`` where that
    is a module of the package (a submodule imported through its package), else ``X``."""
    module = _module_of(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    known = _known_modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in known else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted(CLI.rglob("*.py"))


@functools.cache
def _known_modules() -> frozenset[str]:
    return frozenset(_module_of(p) for p in _sources())


def _rule(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target`` (parts), or None when the map allows it."""
    foundation = set(LAYERS["foundation"])
    level = {part: k for k, layer in enumerate(LAYERS["layers"]) for part in layer}
    if source == target:
        return None
    if source in foundation:
        return None if target in foundation else f"the foundation ({source}) imports only the foundation"
    if target in foundation:
        return None
    for arrow in LAYERS.get("forbidden", []):
        targets = arrow["to"] if isinstance(arrow["to"], list) else [arrow["to"]]
        if arrow["from"] == source and target in targets:
            return f"forbidden arrow {source} → {target}: {arrow['reason']}"
    if source not in level or target not in level:
        return f"{source if source not in level else target} is not in layers.toml"
    if level[target] >= level[source]:
        return f"{source} (layer {level[source]}) may not import {target} (layer {level[target]}): only lower layers"
    return None


def test_the_layer_map_names_every_part_once():
    parts = {_part(_module_of(p)) for p in _sources()}
    listed = LAYERS["foundation"] + [part for layer in LAYERS["layers"] for part in layer]
    assert len(listed) == len(set(listed)), "a part is listed twice in layers.toml"
    assert parts == set(listed), f"parts without a place in layers.toml: {sorted(parts - set(listed))}; " \
                                 f"listed but absent: {sorted(set(listed) - parts)}"


def test_every_import_follows_the_layer_map():
    known = _known_modules()
    broken = []
    for path in _sources():
        source = _part(_module_of(path))
        for line, target in _imports(path):
            if target not in known:  # another package's module
                continue
            why = _rule(source, _part(target))
            if why:
                broken.append(f"{path.relative_to(ROOT)}:{line}: imports {target}: {why}")
    assert not broken, "\n".join(broken)


def test_modules_import_each_other_without_a_cycle():
    """Function-level imports included: an import moved into a function to dodge a cycle is
    still a cycle."""
    known = _known_modules()
    graph: dict[str, set[str]] = {}
    for path in _sources():
        module = _module_of(path)
        edges = {target for _, target in _imports(path) if target in known} - {module}
        graph[module] = edges
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles[:10])


def test_the_rules_refuse_what_the_map_forbids():
    assert _rule("fit", "pigment").startswith("fit (layer")  # upward
    assert "forbidden arrow physics → io" in _rule("physics", "io")
    assert "forbidden arrow track → pigment" in _rule("track", "pigment")
    assert _rule("errors", "io").startswith("the foundation")
    assert _rule("pigment", "fit") is None and _rule("pipeline", "report") is None and _rule("io", "errors") is None
