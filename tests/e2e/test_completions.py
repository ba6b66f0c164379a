"""The committed completions complete real commands in a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("prog", "words", "expected"),
    [
        ("mez", ["mez", "lo"], {"login", "logout"}),
        ("mezctl", ["mezctl", "users", "r"], {"rm", "reset"}),
        ("mezd", ["mezd", "j"], {"join"}),
    ],
)
def test_bash_completion(prog: str, words: list[str], expected: set[str]) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = (
        f"source {ROOT / 'completions' / (prog + '.bash')}; "
        f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
        f"_{prog}_completion {prog}; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=env,
                          timeout=30, check=True)  # fmt: skip
    assert set(done.stdout.split()) == expected


def test_completions_are_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_completions.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
