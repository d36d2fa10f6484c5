"""The package's import direction: each part imports only the parts below it, and no cycle.

Order, bottom up: errors/settings, inputs, store, broker (with the Celery app), job, sharing,
pipelines, schedules, ops, then cli and web. Read from the source (``ast``), so an import inside a function
counts too; the few exceptions are listed with their reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "trainq"

#: Each part's level; a part may import its own level and those below.
LEVELS = {
    "errors": 0,
    "settings": 0,
    "inputs": 1,
    "store": 2,
    "broker": 3,
    "celery": 3,
    "job": 4,
    "sharing": 5,
    "pipelines": 6,
    "schedules": 7,
    "ops": 8,
    "cli": 9,
    "web": 9,
    "__main__": 10,
}

#: Imports against the order, each with its reason: (importing module, imported module) -> why.
EXCEPTIONS = {
    ("trainq.store.registry", "trainq.job.record"): "the store holds job records: their model is its data",
    ("trainq.store.migration", "trainq.job.record"): "a migration rewrites records in their model's encoding",
    ("trainq.settings", "trainq.store.keys"): "redbeat's key names are built with every other key's",
    ("trainq.errors", "trainq.settings"): "URLs in messages are redacted by settings' one rule",
    ("trainq.settings", "trainq.inputs.durations"): "settings parse durations as every input does",
    ("trainq.settings", "trainq.inputs.problems"): "a setting's problem is worded as every input's is",
    ("trainq.settings", "trainq.job.retry"): "the default retry policy is a setting of that type",
    ("trainq.settings", "trainq.store"): "the registry URL may name a Sentinel (trainq.store.sentinel)",
    ("trainq.settings", "trainq.ops"): "with no broker set, the embedded Redis starts on first use",
    ("trainq.settings", "trainq.broker.names"): "Celery's config refuses pools on reserved queue names",
    ("trainq.settings", "trainq.broker.transport"): "Celery's config names trainq's Redis transport",
    ("trainq.ops.stack", "trainq.web.server"): "the local stack starts the web server when asked",
    (
        "trainq.job.task",
        "trainq.sharing",
    ): "a new job meets the sharing gate, which sits above job (it sends)",
}


def _part(module: str) -> str:
    """The part a module belongs to: ``trainq.job.task`` -> ``job``, ``trainq.celery`` -> ``celery``."""
    return module.split(".")[1]


def _imports() -> list[tuple[str, str, int]]:
    """Every ``(importing module, imported trainq module, line)`` in the package but its root."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == "trainq":
            continue  # the root assembles the public API and registers the lifecycle plugins
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [(module, name, node.lineno) for name in names if name.startswith("trainq.")]
    return found


def test_no_part_imports_a_part_above_it() -> None:
    # given every import in the package
    # when each is compared with the parts' order
    upward = [
        f"{module}:{line} imports {name}"
        for module, name, line in _imports()
        if LEVELS[_part(name)] > LEVELS[_part(module)] and (module, name) not in EXCEPTIONS
    ]
    # then none points up
    assert upward == []


def test_no_import_cycle_between_parts() -> None:
    # given the graph of parts, without the listed exceptions
    edges: dict[str, set[str]] = {}
    for module, name, _ in _imports():
        if _part(module) != _part(name) and (module, name) not in EXCEPTIONS:
            edges.setdefault(_part(module), set()).add(_part(name))
    # when it is walked from each part
    cycles = []
    for start in edges:
        todo, seen = list(edges[start]), set()
        while todo:
            part = todo.pop()
            if part == start:
                cycles.append(start)
                break
            if part not in seen:
                seen.add(part)
                todo += edges.get(part, ())
    # then no part reaches itself
    assert cycles == []


def test_every_exception_is_still_needed() -> None:
    # given the listed exceptions, when compared with the imports, then each still occurs
    present = {(module, name) for module, name, _ in _imports()}
    assert set(EXCEPTIONS) - present == set()
