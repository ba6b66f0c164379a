"""The layers import one way (DESIGN.md): ``cli`` -> ``server`` | ``agent`` -> ``proto``.

Every import in the product is read from the source (module level and inside functions,
where the CLIs keep their lazy imports), so a shortcut across a seam fails here rather
than in review: ``proto`` imports nothing of ours, ``agent`` and ``server`` never import
each other, the proxy never reaches into auth or the stores, and ``rich`` is for the
CLIs' rendering only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (package whose modules are checked, import prefixes they must not use)
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("proto", ("cli", "agent", "server", "tests", "bench")),
    ("agent", ("cli", "server", "tests", "bench")),
    ("server", ("cli", "agent", "tests", "bench")),
    ("server/proxy", ("server.auth", "server.backend", "server.audit", "server.sqlite_worker")),
    ("proto", ("rich",)),
    ("agent", ("rich",)),
    ("server", ("rich",)),
)


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "/v1/" not in p.as_posix())


def imports_of(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module name ``path`` imports, relative imports resolved, with its line."""
    package = list(path.relative_to(root).parts[:-1])  # a/b/c.py and a/b/__init__.py: a.b
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])


def _breaks(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=lambda v: str(v))
def test_imports_respect_the_layers(package: str, forbidden: tuple[str, ...]) -> None:
    crossing = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules(package)
        for line, name in imports_of(path)
        if _breaks(name, forbidden)
    ]
    assert crossing == []


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    # The CLIs import lazily inside functions; a checker that read only the module top
    # would pass everything there.
    module = tmp_path / "server" / "proxy" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from server.auth import x\n    import agent.node\n"
        "    from ..auth import y\n    from . import z\n"
    )
    names = [name for _, name in imports_of(module, tmp_path)]
    assert names == ["server.auth", "agent.node", "server.auth", "server.proxy"]
    assert _breaks("server.auth", ("server.auth",)) and not _breaks("serverless", ("server",))
