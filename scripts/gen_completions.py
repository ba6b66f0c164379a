#!/usr/bin/env python3
"""Write shell completions for mez, mezd and mezctl into completions/.

    python scripts/gen_completions.py          # write
    python scripts/gen_completions.py --check  # exit 1 if completions/ is stale

The scripts call back into the program (typer's completion protocol), so they stay
correct as commands change; they only go stale if the protocol or the names change.
Install: bash: source completions/mez.bash (or copy into
/etc/bash_completion.d/); zsh: put completions/_mez on $fpath; fish: copy
completions/mez.fish into ~/.config/fish/completions/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typer._completion_shared import get_completion_script

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("mez", "mezd", "mezctl")
SHELLS = {"bash": "{prog}.bash", "zsh": "_{prog}", "fish": "{prog}.fish"}


def render() -> dict[Path, str]:
    out = {}
    for prog in PROGRAMS:
        var = f"_{prog.upper()}_COMPLETE"
        for shell, pattern in SHELLS.items():
            script = get_completion_script(prog_name=prog, complete_var=var, shell=shell)
            out[ROOT / "completions" / pattern.format(prog=prog)] = script.rstrip() + "\n"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    files = render()
    if args.check:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"completions are stale: {', '.join(stale)}; run scripts/gen_completions.py",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"completions are up to date ({len(files)} files)")
        return 0
    for path, text in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
