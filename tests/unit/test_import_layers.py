"""Imports point one way (README "Layout"): every module of bridge sits in a layer, and
imports only from its own layer or lower ones; and the modules of each package
(bridge/mail, bridge/http, ...) import each other without a circle. Imports inside
functions and under TYPE_CHECKING count too: they tie the modules together as much as the
ones at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge

ROOT = Path(bridge.__file__).parent

# Top first. A unit is a subpackage (bridge.mail) or a module at the top (bridge.cli).
LAYERS: list[set[str]] = [
    {"bridge.__main__", "bridge.cli"},  # the command line
    {"bridge.demo", "bridge.doctor"},  # tools the command line runs beside the server
    {"bridge.http"},  # the only code that knows HTTP
    {"bridge.core"},  # the application core: pool, users, hub, push, engine
    {"bridge.mail"},  # RFC 8621 handlers, accounts, sync, the state hub
    # What the handlers use: the JMAP engine's types, the upstream protocols, Web Push.
    {"bridge.jmap", "bridge.imap", "bridge.smtp", "bridge.sieve", "bridge.webpush"},
    {"bridge.store", "bridge.mime", "bridge.config", "bridge.coordination"},
    {  # small modules everything may use
        "bridge", "bridge.certificates", "bridge.connect_failure", "bridge.credentials",
        "bridge.deadline", "bridge.endpoint", "bridge.inline", "bridge.logs", "bridge.metrics",
        "bridge.providers", "bridge.redaction", "bridge.states", "bridge.workers",
    },
]  # fmt: skip
LAYER_OF = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = ["bridge", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in ROOT.rglob("*.py")}


def unit_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def imported_modules(path: Path) -> set[str]:
    """The bridge modules ``path`` imports anywhere in it; ``from bridge.mail import
    sync`` imports the module bridge.mail.sync, ``from bridge.mail import x`` of a name
    the package bridge.mail."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name in MODULES}


GRAPH = {module: imported_modules(path) for module, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    assert sorted({unit_of(module) for module in MODULES} - LAYER_OF.keys()) == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if LAYER_OF[unit_of(target)] < LAYER_OF[unit_of(module)]
    )
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A circle of imports in ``graph`` (its modules, first one repeated last), or []."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str]:
        path.append(module)
        on_path.add(module)
        for target in sorted(graph[module]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(module)
        done.add(module)
        return []

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return []


def test_find_cycle_finds_a_circle_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


PACKAGES = sorted(
    {unit_of(module) for module in MODULES}
    - {"bridge"}
    - {module for module in MODULES if (ROOT / f"{module.split('.')[-1]}.py").is_file()}
)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_modules_of_a_package_import_each_other_without_a_circle(package: str) -> None:
    # The package itself (its __init__) gathers its modules' names; none imports it back.
    modules = {module for module in MODULES if module.startswith(f"{package}.")}
    assert sorted(module for module in modules if package in GRAPH[module]) == []
    assert find_cycle({module: GRAPH[module] & modules for module in modules}) == []


def test_the_mail_modules_are_checked() -> None:
    assert "bridge.mail" in PACKAGES and "bridge.http" in PACKAGES
