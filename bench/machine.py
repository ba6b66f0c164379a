"""The machine and software the numbers came from."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.openssh import SSHD, ssh_version
from bench.timing import hyperfine_version

PACKAGES = (
    "grpcio",
    "grpclib",
    "asyncssh",
    "cryptography",
    "protobuf",
    "argon2-cffi",
    "h2",
    "mezite",
)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def sshd_version() -> str:
    done = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False)
    return (
        (done.stderr or done.stdout).strip().splitlines()[0] if (done.stderr or done.stdout) else ""
    )


def describe() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib(), 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "ssh": ssh_version(),
        "sshd": sshd_version() or ssh_version(),
        "hyperfine": hyperfine_version() or "not installed (python timing loop)",
        "packages": versions,
    }
