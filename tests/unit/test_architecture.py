"""Architecture rules, checked on the source with ``ast`` (nothing of the project is imported):
no import cycle between modules, packages importing only downwards (entry points -> application
-> services -> domain), a pure ``domain`` package of bounded module size, and ``Settings`` built
only where a process starts."""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "scenedex"
DOMAIN = f"{PACKAGE}.domain"
MAX_LINES = 500
DOMAIN_ALLOWED_TOP_LEVEL = {"numpy"}  # besides the standard library and scenedex.domain itself

# The packages of the project from the top down: a module may import its own package and the
# packages of the tiers below its own, never a package of its own tier or above (lazy imports
# included; only imports under ``if TYPE_CHECKING:`` are exempt). Entry points (the command line,
# the operator tools, the HTTP apps, the Dramatiq process and its actors) call the application
# layer (the composition root and its use cases), which calls the use cases of ``services``,
# which reach the ports of ``domain`` (and the adapters they are handed or build); adapters
# implement the ports and know nothing of who calls them.
TIERS: tuple[tuple[str, ...], ...] = (
    ("scripts",),  # the ``scenedex`` command line: it starts every process below
    ("tools",),  # operator tools (benches drive the embedding service's app)
    ("api", "worker"),  # the HTTP apps; the Dramatiq worker process, its scheduler and supervisor
    ("tasks",),  # the actors, their broker and sender
    ("application",),  # the composition root and the use cases' one facade
    ("services",),  # the use cases
    ("settings",),  # the typed settings, read at the entry points and passed down
    ("adapters",),  # the outside world: the ports' implementations
    ("domain",),  # what the product means
)

# The modules that may call ``Settings()``: where a process starts and reads its environment.
# Everything else takes the settings (or the parts it needs) as an argument.
SETTINGS_ENTRY_POINTS = (
    # The ``scenedex`` console script (scenedex.scripts.cli:main) and its sub-apps, which are
    # also the entries of the admin API (``scenedex api``, app factory api.app.create_app takes
    # the settings), the embedding service and the scheduler (``scenedex scheduler``).
    f"{PACKAGE}.scripts.*",
    # The module ``scenedex worker`` hands to dramatiq's CLI: dramatiq imports it in each worker
    # process, so there is no caller to pass settings in.
    f"{PACKAGE}.worker.dramatiq_app",
)


@dataclass(frozen=True)
class Import:
    target: str  # a module of the project or, outside it, the imported dotted name
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool  # an ``__init__.py``
    where: str  # the path to show in messages

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


class Project:
    """The modules of one package under ``src``, parsed, and what each imports."""

    def __init__(self, src: Path, package: str) -> None:
        self.modules: dict[str, Module] = {}
        self.trees: dict[str, ast.Module] = {}
        for path in sorted((src / package).rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join(parts)
            where = str(path.relative_to(src.parent))
            self.modules[name] = Module(name, path, is_package, where)
            self.trees[name] = ast.parse(path.read_text(encoding="utf-8"), filename=where)
        self.imports = {name: self._imports(name) for name in self.modules}

    def _imports(self, name: str) -> list[Import]:
        """Within the project, ``from a.b import c`` is module ``a.b.c`` when that is a module,
        else ``a.b``; a package stands for its ``__init__.py`` (importing ``a.b.c`` runs
        ``a.b``'s ``__init__`` too, but only an explicit import of the package counts)."""
        module = self.modules[name]
        found = []
        for node, type_checking in _import_nodes(self.trees[name]):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(module, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.modules else base
                    for alias in node.names
                ]
            found += [Import(target, node.lineno, type_checking) for target in dict.fromkeys(targets)]
        return found

    def graph(self) -> dict[str, dict[str, int]]:
        """Module -> {imported module of the project: line of its first import}, imports under
        ``if TYPE_CHECKING:`` left out."""
        graph: dict[str, dict[str, int]] = {}
        for name, found in self.imports.items():
            edges = graph.setdefault(name, {})
            for imp in found:
                if imp.target in self.modules and not imp.type_checking:
                    edges.setdefault(imp.target, imp.line)
        return graph

    def cycles(self) -> list[str]:
        """One message per group of modules that import each other, with each distinct
        shortest cycle through its members and the lines of the imports."""
        graph = self.graph()
        problems = []
        for component in strongly_connected(graph):
            if len(component) == 1 and component[0] not in graph[component[0]]:
                continue
            members = set(component)
            distinct = {}
            for member in component:  # each cycle once, whatever module it is found from
                ring = shortest_cycle(graph, member, members)[:-1]
                turn = ring.index(min(ring))
                ring = ring[turn:] + ring[:turn]
                distinct[tuple(ring)] = [*ring, ring[0]]
            lines = [f"  {self._describe(graph, cycle)}" for _, cycle in sorted(distinct.items())]
            problems.append(f"{len(component)} modules: {', '.join(component)}\n" + "\n".join(lines))
        return sorted(problems)

    def _describe(self, graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
        steps = [cycle[0]]
        for source, target in itertools.pairwise(cycle):
            steps.append(f"-> {target} ({self.modules[source].where}:{graph[source][target]})")
        return " ".join(steps)


@cache
def project() -> Project:
    return Project(SRC, PACKAGE)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every Import/ImportFrom below ``node`` (in function bodies too), with whether it is
    guarded by ``if TYPE_CHECKING:`` (the ``else`` branch of such an ``if`` is not)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_checking
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _import_nodes(ast.Module(body=child.body, type_ignores=[]), True)
            yield from _import_nodes(ast.Module(body=child.orelse, type_ignores=[]), type_checking)
        else:
            yield from _import_nodes(child, type_checking)


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, dict[str, int]], start: str, members: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in graph[node]:
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def write_files(root: Path, files: dict[str, str]) -> None:
    """A small package for a rule's own test: ``files`` maps paths under ``root`` to their text."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_no_import_cycles() -> None:
    problems = project().cycles()
    assert not problems, "import cycles (lazy imports included, TYPE_CHECKING ones not):\n" + "\n".join(
        problems
    )


def test_the_cycle_finder_on_a_small_package(tmp_path: Path) -> None:
    """Lazy and relative imports and a package's ``__init__`` count; TYPE_CHECKING ones do not."""
    files = {
        "pkg/__init__.py": "from pkg.sub import thing\n",
        "pkg/sub/__init__.py": "from .thing import x\n",
        "pkg/sub/thing.py": "def f():\n    from pkg import other\n",
        "pkg/other.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.lone\n",
        "pkg/lone.py": "import pkg.other\n",
    }
    write_files(tmp_path / "src", files)
    small = Project(tmp_path / "src", "pkg")
    assert small.graph() == {
        "pkg": {"pkg.sub.thing": 1},
        "pkg.lone": {"pkg.other": 1},
        "pkg.other": {},
        "pkg.sub": {"pkg.sub.thing": 1},
        "pkg.sub.thing": {"pkg.other": 2},
    }
    assert small.cycles() == []
    (tmp_path / "src/pkg/other.py").write_text("import pkg.lone\n")
    (tmp_path / "src/pkg/lone.py").write_text("def g():\n    from . import other\n")
    (tmp_path / "src/pkg/sub/thing.py").write_text("from pkg.sub import y\n")
    assert Project(tmp_path / "src", "pkg").cycles() == [
        "2 modules: pkg.lone, pkg.other\n"
        "  pkg.lone -> pkg.other (src/pkg/lone.py:2) -> pkg.lone (src/pkg/other.py:1)",
        "2 modules: pkg.sub, pkg.sub.thing\n"
        "  pkg.sub -> pkg.sub.thing (src/pkg/sub/__init__.py:1) -> pkg.sub (src/pkg/sub/thing.py:1)",
    ]


def package_of(name: str, package: str = PACKAGE) -> str | None:
    """The top-level package of the project ``name`` belongs to (``scenedex.api.routes.videos``:
    ``api``; the module ``scenedex.settings``: ``settings``); None for the project's root."""
    parts = name.split(".")
    return parts[1] if parts[0] == package and len(parts) > 1 else None


def tier_of(top: str | None, tiers: tuple[tuple[str, ...], ...] = TIERS) -> int | None:
    """The index of ``top``'s tier (0 the highest), None for a package in no tier."""
    return next((index for index, tier in enumerate(tiers) if top in tier), None)


def upward_imports(
    project: Project, package: str = PACKAGE, tiers: tuple[tuple[str, ...], ...] = TIERS
) -> list[str]:
    """Imports of a package of the same tier or a higher one (``tiers`` from the top down),
    lazy ones included, TYPE_CHECKING ones not; a package in no tier is reported too."""
    problems = []
    for name, module in project.modules.items():
        source = package_of(name, package)
        if source is None:
            continue
        if tier_of(source, tiers) is None:
            problems.append(f"  {module.where}: package {source!r} is in no tier")
            continue
        for imp in project.imports[name]:
            target = package_of(imp.target, package)
            if imp.type_checking or imp.target not in project.modules or target in (None, source):
                continue
            here, there = tier_of(source, tiers), tier_of(target, tiers)
            if there is None or there <= here:  # type: ignore[operator]
                where = "its own tier" if there == here else "a higher tier"
                problems.append(
                    f"  {module.where}:{imp.line} ({source}) imports {imp.target} ({target}, {where})"
                )
    return problems


def test_packages_import_only_downwards() -> None:
    problems = upward_imports(project())
    order = " -> ".join("/".join(tier) for tier in TIERS)
    assert not problems, (
        f"packages may import only the tiers below their own ({order}; lazy imports included, "
        "TYPE_CHECKING ones exempt):\n" + "\n".join(problems)
    )


def test_the_package_rule_on_a_small_package(tmp_path: Path) -> None:
    """Upward and sideways imports are found, lazy and relative ones included; TYPE_CHECKING
    ones, imports within a package and of the root package are not."""
    files = {
        "pkg/__init__.py": "",
        "pkg/top/__init__.py": "from pkg.mid import use\n",
        "pkg/top/cli.py": "from ..low import thing\nfrom pkg import top\n",
        "pkg/side/__init__.py": "",
        "pkg/side/app.py": "def f():\n    from pkg.top import cli\n",
        "pkg/mid/__init__.py": "",
        "pkg/mid/use.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import cli\n"
            "from pkg.low.thing import x\nimport pkg\n"
        ),
        "pkg/low/__init__.py": "",
        "pkg/low/thing.py": "def g():\n    from pkg.mid import use\nx = 1\n",
        "pkg/stray.py": "",
    }
    write_files(tmp_path / "src", files)
    tiers = (("top", "side"), ("mid",), ("low",))
    assert upward_imports(Project(tmp_path / "src", "pkg"), "pkg", tiers) == [
        "  src/pkg/low/thing.py:2 (low) imports pkg.mid.use (mid, a higher tier)",
        "  src/pkg/side/app.py:2 (side) imports pkg.top.cli (top, its own tier)",
        "  src/pkg/stray.py: package 'stray' is in no tier",
    ]
    (tmp_path / "src/pkg/low/thing.py").write_text("x = 1\n")
    (tmp_path / "src/pkg/side/app.py").write_text("from pkg.low import thing\n")
    (tmp_path / "src/pkg/stray.py").unlink()
    assert upward_imports(Project(tmp_path / "src", "pkg"), "pkg", tiers) == []


def in_domain(name: str) -> bool:
    return name == DOMAIN or name.startswith(f"{DOMAIN}.")


def domain_imports_outside(project: Project) -> list[str]:
    """Imports of ``domain`` modules other than the standard library, numpy and ``domain``
    itself; TYPE_CHECKING ones included (mypy checks the domain on its own, strictly)."""
    allowed = set(sys.stdlib_module_names) | DOMAIN_ALLOWED_TOP_LEVEL
    problems = []
    for name, module in project.modules.items():
        for imp in project.imports[name] if in_domain(name) else []:
            if not in_domain(imp.target) and imp.target.split(".")[0] not in allowed:
                guard = " (under TYPE_CHECKING)" if imp.type_checking else ""
                problems.append(f"  {module.where}:{imp.line} imports {imp.target}{guard}")
    return problems


def long_modules(project: Project) -> list[str]:
    """Modules over ``MAX_LINES`` lines, anywhere in the package but Alembic's migrations."""
    too_long = []
    for name, module in project.modules.items():
        lines = len(module.path.read_text(encoding="utf-8").splitlines())
        if ".migrations." not in name and lines > MAX_LINES:
            too_long.append(f"  {module.where}: {lines} lines")
    return too_long


def is_entry_point(name: str) -> bool:
    return any(
        name.startswith(pattern.removesuffix("*")) if pattern.endswith(".*") else name == pattern
        for pattern in SETTINGS_ENTRY_POINTS
    )


def settings_calls(project: Project) -> list[str]:
    """``Settings(...)`` / ``x.Settings(...)`` calls outside the entry points."""
    calls = []
    for name, module in project.modules.items():
        if is_entry_point(name):
            continue
        lines = sorted(
            node.lineno
            for node in ast.walk(project.trees[name])
            if isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "Settings")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "Settings")
            )
        )
        calls += [f"  {module.where}:{line}" for line in lines]
    return calls


def test_domain_imports_only_the_standard_library_numpy_and_itself() -> None:
    assert any(in_domain(name) for name in project().modules)
    problems = domain_imports_outside(project())
    assert not problems, (
        f"{DOMAIN} may import only the standard library, {', '.join(sorted(DOMAIN_ALLOWED_TOP_LEVEL))} "
        "and itself:\n" + "\n".join(problems)
    )


def test_no_module_is_over_500_lines() -> None:
    too_long = long_modules(project())
    assert not too_long, f"modules over {MAX_LINES} lines (migrations aside):\n" + "\n".join(too_long)


def test_settings_are_built_only_in_entry_points() -> None:
    calls = settings_calls(project())
    assert not calls, (
        "Settings() outside the entry points (pass the settings in from the composition root instead; "
        f"entry points: {', '.join(SETTINGS_ENTRY_POINTS)}):\n" + "\n".join(calls)
    )


def test_the_domain_and_settings_rules_on_a_small_package(tmp_path: Path) -> None:
    files = {
        "scenedex/domain/a.py": (
            "import json\nimport numpy as np\nfrom typing import TYPE_CHECKING\nfrom . import b\n"
            "from scenedex.domain.b import c\nif TYPE_CHECKING:\n    import sqlalchemy\n"
            "def f():\n    from scenedex.adapters import db\n"
        ),
        "scenedex/domain/b.py": "x = 1\n" * (MAX_LINES + 1),
        "scenedex/adapters/db.py": "",
        "scenedex/adapters/migrations/versions/0001_big.py": "x = 1\n" * (MAX_LINES + 1),
        "scenedex/tasks/runtime.py": (
            "from scenedex import settings\ns = settings.Settings()\ndef f():\n    return Settings(a=1)\n"
        ),
        "scenedex/scripts/cli.py": "s = Settings()\n",
        "scenedex/worker/dramatiq_app.py": "s = Settings()\n",
        "scenedex/worker/broker.py": "s = Settings\n",
    }
    write_files(tmp_path / "src", files)
    small = Project(tmp_path / "src", PACKAGE)
    assert domain_imports_outside(small) == [
        "  src/scenedex/domain/a.py:7 imports sqlalchemy (under TYPE_CHECKING)",
        "  src/scenedex/domain/a.py:9 imports scenedex.adapters.db",
    ]
    assert long_modules(small) == [f"  src/scenedex/domain/b.py: {MAX_LINES + 1} lines"]
    assert settings_calls(small) == ["  src/scenedex/tasks/runtime.py:2", "  src/scenedex/tasks/runtime.py:4"]
