#!/usr/bin/env python3
"""Regenerate the committed gRPC code from proto/v1/*.proto.

One script, one pinned generator (grpcio-tools, mypy-protobuf and grpclib's plugin, as
pinned in pyproject's `gen` extra), so that CI can regenerate and fail on any diff:

    python scripts/gen_proto.py          # write
    python scripts/gen_proto.py --check  # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED = {"grpcio-tools": "1.85.1", "mypy-protobuf": "5.1.0"}
OUTPUT_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi", "_grpc.py")


def check_pins() -> None:
    for dist, pinned in PINNED.items():
        found = version(dist)
        if found != pinned:
            sys.exit(f"{dist} {found} is installed but {pinned} is pinned: pip install -e '.[gen]'")


def generate(out_dir: Path) -> None:
    bin_dir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto" / "v1").glob("*.proto"))
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT),
        f"--plugin=protoc-gen-grpclib_python={bin_dir / 'protoc-gen-grpclib_python'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}", f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}", f"--mypy_grpc_out={out_dir}",
        f"--grpclib_python_out={out_dir}",
        *protos,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)


def generated_files(base: Path) -> list[Path]:
    return sorted(p for p in (base / "proto" / "v1").iterdir() if p.name.endswith(OUTPUT_SUFFIXES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    check_pins()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = generated_files(out)
        if args.check:
            committed = {p.name for p in generated_files(ROOT)}
            stale = [p.name for p in fresh if p.name not in committed]
            stale += sorted(committed - {p.name for p in fresh})
            stale += [
                p.name
                for p in fresh
                if p.name in committed
                and not filecmp.cmp(p, ROOT / "proto" / "v1" / p.name, shallow=False)
            ]
            if stale:
                print("generated code is stale: " + ", ".join(sorted(set(stale))), file=sys.stderr)
                print("run: python scripts/gen_proto.py", file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        for old in generated_files(ROOT):
            old.unlink()
        for path in fresh:
            shutil.copy(path, ROOT / "proto" / "v1" / path.name)
            print(f"wrote proto/v1/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
