"""The house's rules, read from every module's imports (the `ast` module, imports inside functions included):
a lower layer never imports a higher one, roles never import each other, no import circle between files or
packages, Ray only in actors/, cluster/ and the top, no literal device string outside cluster/. Each failure
names the two files and the line."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# ground up; packages on one layer sit side by side and may not import each other unless listed in SIDEWAYS
# (everything is under the one import name `pgkd`: `pgkd.bus` is the wire; the modules at `pgkd/`'s root are the top)
LAYERS = {
    "basics": 1,  # the run's vocabulary: settings base, YAML lines, dataset, errors, the kind registry
    "bus": 2,  # the wire: Redis client and server, typed messages, run keys, roster
    "teacher": 3, "student": 3, "evaluator": 3,  # the three roles, Ray-free
    "cluster": 4, "actors": 4,  # placement; the only @ray.remote code
    "tracking": 4,  # experiment tracking (MLflow): a sink the driver feeds, Ray-free
    "config": 5,  # pgkd/config.py: composes the blocks each layer owns into the run's config and loads YAML
    "top": 6,  # pgkd/*.py: CLI, driver, launch, watching, finishing, resume, scaling, status, report, Python API
}
SIDEWAYS = {("actors", "cluster")}  # actor shells ask placement for their devices and options
RAY_ALLOWED = {"actors", "cluster", "top"}
DEVICE_STRINGS = {"cpu", "cuda", "mps", "xpu"}


def modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every file of the package."""
    found = {}
    for path in sorted((root / "pgkd").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth; `from pkg import mod` names the
    module where one exists."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((child if child in known else base, node.lineno))
    return found


def graph(root: Path = REPO) -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    known = modules(root)
    edges = {}
    for name, path in known.items():
        edges[name] = [(target, line) for target, line in imports_of(path, name, known)]
    return known, edges


def top(module: str) -> str:
    """The layer key of a module: pgkd.bus.client -> bus, pgkd.driver (or pgkd itself) -> top; outside pgkd,
    the first name (ray, torch)."""
    parts = module.split(".")
    if parts[0] != "pgkd":
        return parts[0]
    if len(parts) == 2 and parts[1] == "config":
        return "config"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def against_layers(root: Path = REPO) -> list[str]:
    known, edges = graph(root)
    wrong = []
    for name, targets in edges.items():
        for target, line in targets:
            source_pkg, target_pkg = top(name), top(target)
            if target_pkg not in LAYERS or target_pkg == source_pkg:
                continue
            upward = LAYERS[target_pkg] > LAYERS[source_pkg]
            sideways = LAYERS[target_pkg] == LAYERS[source_pkg] and (source_pkg, target_pkg) not in SIDEWAYS
            if upward or sideways:
                target_file = rel(known[target]) if target in known else target
                wrong.append(f"{rel(known[name])}:{line} imports {target_file} "
                             f"({source_pkg}, layer {LAYERS[source_pkg]} -> {target_pkg}, layer {LAYERS[target_pkg]})")
    return wrong


def test_no_lower_layer_imports_a_higher_one_and_roles_stay_apart():
    wrong = against_layers()
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def cycles(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each an import circle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_files():
    known, edges = graph()
    file_edges = {name: {t for t, _ in targets if t in known and t != name and not name.startswith(t + ".")}
                  for name, targets in edges.items()}
    found = cycles(sorted(known), file_edges)
    described = []
    for component in found:
        links = [f"{rel(known[a])}:{line} imports {rel(known[b])}" for a in component
                 for b, line in edges[a] if b in component and b != a]
        described.append("; ".join(links))
    assert not found, "import circles between files:\n" + "\n".join(described)


def test_no_import_circle_between_packages():
    known, edges = graph()
    package_edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for name, targets in edges.items():
        for target, line in targets:
            if top(target) in LAYERS and top(target) != top(name):
                package_edges.setdefault(top(name), set()).add(top(target))
                where.setdefault((top(name), top(target)), f"{rel(known[name])}:{line} imports {target}")
    found = cycles(sorted(LAYERS), package_edges)
    described = ["; ".join(where[(a, b)] for a in c for b in c if (a, b) in where) for c in found]
    assert not found, "import circles between packages:\n" + "\n".join(described)


def test_ray_is_imported_only_by_actors_cluster_and_the_top():
    known, edges = graph()
    wrong = [f"{rel(known[name])}:{line} imports {target}" for name, targets in edges.items()
             for target, line in targets if top(target) == "ray" and top(name) not in RAY_ALLOWED]
    assert not wrong, "Ray outside actors/, cluster/ and pgkd/:\n" + "\n".join(wrong)


def test_ray_remote_only_in_actors():
    wrong = []
    for name, path in modules().items():
        if top(name) == "actors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "remote" and \
                    isinstance(node.value, ast.Name) and node.value.id == "ray":
                wrong.append(f"{rel(path)}:{node.lineno} uses ray.remote")
    assert not wrong, "@ray.remote outside actors/:\n" + "\n".join(wrong)


def test_no_literal_device_string_outside_cluster():
    wrong = []
    for name, path in modules().items():
        if top(name) == "cluster":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.split(":")[0] in DEVICE_STRINGS:
                wrong.append(f"{rel(path)}:{node.lineno} names the device '{node.value}'")
    assert not wrong, "device strings outside cluster/ (ask cluster.placement):\n" + "\n".join(wrong)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The checks themselves, on a made-up tree: an upward import hidden in a function, a role importing
    another role, and a circle are each found, with file and line."""
    for package in ("pgkd", "pgkd/basics", "pgkd/teacher", "pgkd/student"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "pgkd/basics/config.py").write_text("import os\n\n\ndef f():\n    from pgkd.driver import run\n")
    (tmp_path / "pgkd/driver.py").write_text("from pgkd.basics import config\n")
    (tmp_path / "pgkd/teacher/t.py").write_text("from pgkd.student.s import x\n")
    (tmp_path / "pgkd/student/s.py").write_text("from .u import y\n")
    (tmp_path / "pgkd/student/u.py").write_text("from pgkd.student import s\n")
    wrong = against_layers(tmp_path)
    assert any("config.py:5 imports driver.py (basics, layer 1 -> top, layer 6)" in w for w in wrong), wrong
    assert any("t.py:1 imports s.py (teacher, layer 3 -> student, layer 3)" in w for w in wrong), wrong
    assert len(wrong) == 2, wrong
    _, edges = graph(tmp_path)
    assert ("pgkd.student.u", 1) in edges["pgkd.student.s"] and ("pgkd.student.s", 1) in edges["pgkd.student.u"]
    assert cycles(["a", "b", "c"], {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles(["a", "b"], {"a": {"b"}}) == []


def bench_files(root: Path = REPO) -> dict[str, Path]:
    return {f"bench.{path.stem}": path for path in sorted((root / "bench").glob("*.py"))}


def test_bench_imports_only_below_the_top_and_nothing_imports_bench():
    """Benchmarks measure the layers (they may load a run config); they are never part of the product."""
    known = modules() | bench_files()
    wrong = []
    for name, path in bench_files().items():
        for target, line in imports_of(path, name, known):
            if top(target) == "top" or (target == "pgkd" and top(name) == "bench"):
                wrong.append(f"{rel(path)}:{line} imports {target} (the top: run it as `pgkd ...` instead)")
    for name, path in list(modules().items()) + [(f"tests.{p.stem}", p) for p in (REPO / "tests").glob("*.py")]:
        for target, line in imports_of(path, name, known):
            if target.split(".")[0] == "bench":
                wrong.append(f"{rel(path)}:{line} imports {target}")
    assert not wrong, "bench/ against the layers:\n" + "\n".join(wrong)


def kind_families(root: Path = REPO) -> list[tuple[str, Path, int, list[str]]]:
    """(module, file, line, package names) of every KindFamily(...) declared in the product."""
    found = []
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "KindFamily" and len(node.args) >= 4:
                packages = [e.value for e in getattr(node.args[3], "elts", []) if isinstance(e, ast.Constant)]
                found.append((name, path, node.lineno, packages))
    return found


def test_kind_families_discover_only_their_own_role():
    """The packages a family imports by name (its kinds) are strings the import scan cannot see: each must
    exist and sit in the role that declares the family, so discovery never reaches across or up the layers."""
    families = kind_families()
    assert {top(name) for name, *_ in families} >= {"teacher", "student"}, families
    wrong = []
    for name, path, line, packages in families:
        for package in packages:
            folder = REPO / Path(*package.split("."))
            if not (folder / "__init__.py").is_file():
                wrong.append(f"{rel(path)}:{line} names {package}, which is not a package")
            elif top(package) != top(name):
                wrong.append(f"{rel(path)}:{line} discovers {package} ({top(package)}) from {top(name)}")
    assert not wrong, "kind families against the layers:\n" + "\n".join(wrong)


def test_product_files_stay_small():
    """A file over 350 lines is a room doing two jobs: split it."""
    long = [f"{rel(path)}: {n} lines" for path in modules().values()
            if (n := len(path.read_text().splitlines())) > 350]
    assert not long, "files over 350 lines:\n" + "\n".join(long)


def test_the_ground_holds_no_role_settings():
    """pgkd/basics/ holds the settings base and the dataset block only; every role's block lives in its role."""
    known = modules()
    found = []
    for name, path in known.items():
        if top(name) != "basics":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") in ("Settings", "BaseModel")
                                                      for b in node.bases):
                found.append(node.name)
    assert sorted(found) == ["DatasetConfig", "Settings"], found
