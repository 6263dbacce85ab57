"""The import layering docs/architecture.md states, checked on the source (no import runs).

From every ``.py`` file of the five packages: which package imports which (imports inside
functions count), whether an import reaches another package's private module or name, and
whether ``getattr``/``hasattr`` probes one of the project's modules for a function. Then:
the package graph has no cycle, its edges are the ones the table in docs/architecture.md
allows, no private name crosses a package boundary, no probe. The checker itself is tested
on a planted tree (a cycle, a private import, a probe) so that it cannot pass by finding
nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("perfmodel", "kernels", "search", "validation", "recperf")


@dataclass
class ImportGraph:
    """What the source of a set of packages imports from each other."""

    #: (importer, imported) -> where ("path:line")
    edges: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: imports of another package's private module or name, "path:line module[.name]"
    private: list[str] = field(default_factory=list)
    #: getattr/hasattr calls on one of the project's modules, "path:line"
    probes: list[str] = field(default_factory=list)

    def cycle(self) -> list[str] | None:
        """A cycle of packages (first package repeated at the end), or None."""
        graph: dict[str, set[str]] = {}
        for a, b in self.edges:
            graph.setdefault(a, set()).add(b)
        done: set[str] = set()

        def visit(node: str, path: list[str]) -> list[str] | None:
            if node in path:
                return [*path[path.index(node):], node]
            if node in done:
                return None
            for nxt in sorted(graph.get(node, ())):
                found = visit(nxt, [*path, node])
                if found:
                    return found
            done.add(node)
            return None

        for start in sorted(graph):
            found = visit(start, [])
            if found:
                return found
        return None


def import_graph(root: Path, packages: tuple[str, ...]) -> ImportGraph:
    """The :class:`ImportGraph` of ``packages`` (folders under ``root``)."""
    g = ImportGraph()
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            project_names: set[str] = set(packages)  # names bound to the project's modules in this file
            for node in ast.walk(tree):
                found: list[tuple[str, list[str]]] = []  # (module, names imported from it)
                if isinstance(node, ast.Import):
                    for a in node.names:
                        found.append((a.name, []))
                        if a.name.split(".")[0] in packages:
                            project_names.add(a.asname or a.name.split(".")[0])
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.append((node.module, [a.name for a in node.names]))
                    if node.module.split(".")[0] in packages:
                        project_names.update(a.asname or a.name for a in node.names if a.name[:1].islower())
                for module, names in found:
                    top, *rest = module.split(".")
                    if top not in packages or top == pkg:
                        continue
                    g.edges.setdefault((pkg, top), []).append(f"{rel}:{node.lineno}")
                    if any(p.startswith("_") for p in rest):
                        g.private.append(f"{rel}:{node.lineno} {module}")
                    g.private.extend(f"{rel}:{node.lineno} {module}.{n}" for n in names if n.startswith("_"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ("getattr", "hasattr") and node.args):
                    target = node.args[0]
                    while isinstance(target, ast.Attribute):
                        target = target.value
                    if isinstance(target, ast.Name) and target.id in project_names:
                        g.probes.append(f"{rel}:{node.lineno}")
    return g


def allowed_imports(doc: Path) -> dict[str, set[str]]:
    """The table "package | may import" of docs/architecture.md."""
    out: dict[str, set[str]] = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\|\s*`(\w+)`\s*\|\s*([^|]*)\|.*", line.strip())
        if m and m.group(1) in PACKAGES:
            out[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return out


GRAPH = import_graph(ROOT, PACKAGES)


def test_no_import_cycle_between_the_packages() -> None:
    assert GRAPH.cycle() is None, f"import cycle {GRAPH.cycle()}: {GRAPH.edges}"


def test_package_imports_are_the_ones_the_architecture_allows() -> None:
    allowed = allowed_imports(ROOT / "docs" / "architecture.md")
    assert set(allowed) == set(PACKAGES), f"docs/architecture.md's import table lists {sorted(allowed)}"
    assert allowed["perfmodel"] == set(), "perfmodel imports none of the others"
    assert all("recperf" not in v for v in allowed.values()), "nothing imports recperf"
    assert "validation" not in allowed["search"] and "search" not in allowed["validation"]
    bad = {e: w[:3] for e, w in GRAPH.edges.items() if e[1] not in allowed[e[0]]}
    assert bad == {}, f"imports docs/architecture.md does not allow: {bad}"


def test_no_import_of_another_packages_private_names() -> None:
    assert GRAPH.private == []


def test_no_getattr_or_hasattr_probe_of_the_projects_modules() -> None:
    assert GRAPH.probes == []


def test_the_checker_finds_a_planted_cycle_private_import_and_probe(tmp_path: Path) -> None:
    files = {
        "alpha/__init__.py": "from alpha._core import f\n",
        "alpha/_core.py": "def f() -> None:\n    import beta\n    beta.g()\n",
        "beta/__init__.py": "from beta._impl import g\n",
        "beta/_impl.py": (
            "import alpha as a\n"
            "from alpha import _core\n"
            "def g() -> None:\n"
            "    if hasattr(a, 'f'):\n"
            "        getattr(a._core, 'f')()\n"
        ),
        "gamma/__init__.py": "import beta\nfrom alpha._core import f\n",
    }
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    g = import_graph(tmp_path, ("alpha", "beta", "gamma"))
    assert set(g.edges) == {("alpha", "beta"), ("beta", "alpha"), ("gamma", "beta"), ("gamma", "alpha")}
    assert g.cycle() in (["alpha", "beta", "alpha"], ["beta", "alpha", "beta"])
    assert g.private == ["beta/_impl.py:2 alpha._core", "gamma/__init__.py:2 alpha._core"]
    assert g.probes == ["beta/_impl.py:4", "beta/_impl.py:5"]
    # without the back edge there is no cycle
    (tmp_path / "alpha" / "_core.py").write_text("def f() -> None:\n    pass\n")
    assert import_graph(tmp_path, ("alpha", "beta", "gamma")).cycle() is None
