"""The generic top-level import names Mezite uses must not be claimed by any other distribution.

``cli``, ``server``, ``agent`` and ``proto`` are short, common names. If some other installed
distribution also ships one of them, whichever is found first on ``sys.path`` wins and the
other silently breaks. This guards against that in the development environment.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
from pathlib import Path, PurePosixPath

import pytest

PROJECT = "mezite"
IMPORT_NAMES = ("cli", "server", "agent", "proto")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _record_top_levels(dist: md.Distribution) -> set[str]:
    """Top-level import names a distribution installs, judged from its RECORD."""
    names: set[str] = set()
    for file in dist.files or ():
        parts = PurePosixPath(str(file)).parts
        if not parts or parts[0] in ("..", "__pycache__"):
            continue
        first = parts[0]
        if first.endswith((".dist-info", ".egg-info", ".data")):
            continue
        if len(parts) == 1:
            # A top-level module: cli.py, cli.cpython-311-x86_64-linux-gnu.so, ...
            if "." in first and not first.endswith(".pth"):
                names.add(first.split(".", 1)[0])
        else:
            names.add(first)
    return names


def _where(dist: md.Distribution) -> str:
    return str(getattr(dist, "_path", None) or dist.locate_file(""))


def _providers(import_name: str) -> dict[str, str]:
    """Map normalised distribution name -> how it claims ``import_name``."""
    found: dict[str, str] = {}
    for dist_name in md.packages_distributions().get(import_name, []):
        found.setdefault(_norm(dist_name), f"{dist_name} (packages_distributions)")
    for dist in md.distributions():
        dist_name = dist.metadata["Name"] or "<unnamed>"
        top_level = dist.read_text("top_level.txt") or ""
        if import_name in top_level.split():
            found.setdefault(_norm(dist_name), f"{dist_name} (top_level.txt in {_where(dist)})")
        if import_name in _record_top_levels(dist):
            found.setdefault(_norm(dist_name), f"{dist_name} (RECORD in {_where(dist)})")
    return found


@pytest.mark.parametrize("import_name", IMPORT_NAMES)
def test_no_other_distribution_provides_import_name(import_name: str) -> None:
    others = {k: v for k, v in _providers(import_name).items() if k != PROJECT}
    assert not others, (
        f"import name {import_name!r} is also provided by other installed distribution(s): "
        + "; ".join(sorted(others.values()))
        + f". They shadow or are shadowed by {PROJECT}'s {import_name!r} package."
    )


def _resolves_inside_repo(import_name: str) -> bool:
    spec = importlib.util.find_spec(import_name)
    if spec is None:
        return False
    locations = list(spec.submodule_search_locations or [])
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        locations.append(spec.origin)
    return bool(locations) and all(
        Path(loc).resolve().is_relative_to(REPO_ROOT) for loc in locations
    )


@pytest.mark.parametrize("import_name", IMPORT_NAMES)
def test_mezite_provides_import_name(import_name: str) -> None:
    providers = _providers(import_name)
    if PROJECT in providers:
        return
    # Some editable-install flavours leave no trace in the metadata; then at least the
    # import must resolve to this checkout.
    assert _resolves_inside_repo(import_name), (
        f"import name {import_name!r} is neither declared by the {PROJECT} distribution "
        f"(providers: {sorted(providers.values()) or 'none'}) nor resolves inside {REPO_ROOT}"
    )


@pytest.mark.parametrize("import_name", IMPORT_NAMES)
def test_import_name_resolves_to_this_checkout(import_name: str) -> None:
    assert _resolves_inside_repo(import_name), (
        f"import {import_name!r} resolves to {importlib.util.find_spec(import_name)!r}, "
        f"not to the checkout at {REPO_ROOT}"
    )
