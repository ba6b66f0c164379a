#!/usr/bin/env python3
"""Install the lowest versions pyproject.toml allows and run the unit tests on them, so a
dependency floor cannot claim more than the code can keep.

    python3 scripts/lowest_versions.py            # fresh venv in a temp dir, then pytest
    python3 scripts/lowest_versions.py --keep DIR # the venv in DIR (kept, reused)

Every runtime dependency must have a floor (``name>=X``); each becomes ``name==X`` in a
constraints file that pip installs the project under. Only the direct dependencies are
pinned: what they pull in resolves as it would for a user, which is what a floor promises.
The test tools come from the ``test`` extra's own specs, and only those the unit tests need.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT_TEST_TOOLS = ("pytest", "pytest-asyncio", "keyrings.alt", "mypy", "hypothesis")
_FLOOR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*(.*)$")


def _name_and_spec(requirement: str) -> tuple[str, str]:
    found = _FLOOR.match(requirement.split(";")[0].strip())
    if not found:
        raise SystemExit(f"cannot read requirement {requirement!r}")
    return found.group(1), found.group(2)


def constraints(project: dict[str, object]) -> list[str]:
    """``name==floor`` for every runtime dependency; an unbounded one is an error."""
    pins = []
    deps = project["dependencies"]
    assert isinstance(deps, list)
    for requirement in deps:
        name, spec = _name_and_spec(requirement)
        floors = [part.strip()[2:].strip() for part in spec.split(",") if ">=" in part]
        if len(floors) != 1:
            raise SystemExit(f"dependency {requirement!r} needs one floor (name>=X)")
        pins.append(f"{name}=={floors[0]}")
    return pins


def test_tools(project: dict[str, object]) -> list[str]:
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    specs = {_name_and_spec(req)[0].lower(): req for req in extras["test"]}
    return [specs[name] for name in UNIT_TEST_TOOLS]


def _release(version: str) -> tuple[int, ...]:
    """1.2 and 1.2.0 are one version."""
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the venv here")
    parser.add_argument("pytest_args", nargs="*", default=["tests/unit"])
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = constraints(project)
    with tempfile.TemporaryDirectory(prefix="mezite-lowest-") as tmp:
        venv = args.keep or Path(tmp) / "venv"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pinned = Path(tmp) / "constraints.txt"
        pinned.write_text("".join(f"{pin}\n" for pin in pins))
        print("lowest versions:", " ".join(pins), flush=True)
        python = str(venv / "bin" / "python")
        pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", "-c", str(pinned), ".", *test_tools(project)],
                       cwd=ROOT, check=True)  # fmt: skip
        subprocess.run([*pip, "check"], check=True)
        # What pip installed is what was asked for (a reused venv could hold newer ones).
        check = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
        names = [pin.split("==")[0] for pin in pins]
        got = subprocess.run([python, "-c", check, *names], check=True, capture_output=True,
                             text=True).stdout.split()  # fmt: skip
        wrong = [f"{pin} (got {version})" for pin, version in zip(pins, got, strict=True)
                 if _release(pin.split("==")[1]) != _release(version)]  # fmt: skip
        if wrong:
            raise SystemExit(f"not the lowest versions: {', '.join(wrong)}")
        return subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args],
            cwd=ROOT,
            check=False,
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
