#!/usr/bin/env python3
"""Vendor the web UI's third-party code (xterm.js and its fit addon) from the npm registry.

    python scripts/vendor_web.py          # download the pinned tarballs, verify, write
    python scripts/vendor_web.py --check  # no network: exit 1 if the files on disk differ
                                          # from server/proxy/web/static/vendor/VENDORED.json

Each tarball is pinned twice: by the sha256 of its bytes and by the registry's sha512
integrity string; a download that matches neither pin exactly is refused before anything is
unpacked. Only the named members are taken out of a tarball (never extracted wholesale), and
VENDORED.json records the package, version, tarball hashes and the sha256 of every file
written, so a reviewer (and --check in CI) can tell the committed copy is the registry's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "server" / "proxy" / "web" / "static" / "vendor"
MANIFEST = "VENDORED.json"
MAX_TARBALL = 16 * 1024 * 1024


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    tarball_sha256: str
    integrity: str  # the registry's dist.integrity (sha512, base64)
    files: dict[str, str]  # member inside the tarball -> path under VENDOR_DIR

    @property
    def url(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"https://registry.npmjs.org/{self.name}/-/{base}-{self.version}.tgz"


PACKAGES = (
    Package(
        name="@xterm/xterm",
        version="6.0.0",
        tarball_sha256="908e66e04af6c8dc6b00dd3b54de088e2e81e5ed866284fd6c2fb3c2d1c7a3f6",
        integrity="sha512-TQwDdQGtwwDt+2cgKDLn0IRaSxYu1tSUjgKarSDkUM0ZNiSRXFpjxEsvc/Zgc5kq5omJ+V0a8/kIM2WD3sMOYg==",
        files={
            "package/lib/xterm.js": "xterm/xterm.js",
            "package/css/xterm.css": "xterm/xterm.css",
            "package/LICENSE": "xterm/LICENSE-xterm",
        },
    ),
    Package(
        name="@xterm/addon-fit",
        version="0.11.0",
        tarball_sha256="26003b4517a132b64e4ff228fd88a5fda3fff5e606c76093f6dcff772e9ecec0",
        integrity="sha512-jYcgT6xtVYhnhgxh3QgYDnnNMYTcf8ElbxxFzX0IZo+vabQqSPAjC3c1wJrKB5E19VwQei89QCiZZP86DCPF7g==",
        files={
            "package/lib/addon-fit.js": "xterm/addon-fit.js",
            "package/LICENSE": "xterm/LICENSE-addon-fit",
        },
    ),
)


class VendorError(Exception):
    """A download, a pin or a file on disk is not what it should be."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_tarball(pkg: Package, data: bytes) -> None:
    """Refuse ``data`` unless it matches both of ``pkg``'s pins."""
    got = sha256_hex(data)
    if got != pkg.tarball_sha256:
        raise VendorError(f"{pkg.name}@{pkg.version}: tarball sha256 {got} != pinned")
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if integrity != pkg.integrity:
        raise VendorError(f"{pkg.name}@{pkg.version}: tarball integrity {integrity} != pinned")


def download(pkg: Package) -> bytes:
    with urllib.request.urlopen(pkg.url, timeout=60) as resp:  # noqa: S310 (fixed https URL)
        data: bytes = resp.read(MAX_TARBALL + 1)
    if len(data) > MAX_TARBALL:
        raise VendorError(f"{pkg.name}@{pkg.version}: tarball larger than {MAX_TARBALL} bytes")
    return data


def members(pkg: Package, data: bytes) -> dict[str, bytes]:
    """The named regular files of the (already verified) tarball, by their vendored path."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, dest in pkg.files.items():
            info = tar.getmember(member)
            fh = tar.extractfile(info) if info.isfile() else None
            if fh is None:
                raise VendorError(f"{pkg.name}: {member} is not a regular file")
            out[dest] = fh.read()
    return out


def vendor(vendor_dir: Path, fetch: Callable[[Package], bytes] = download) -> dict[str, object]:
    """Download, verify and write every package; return the manifest written."""
    entries = []
    written: dict[Path, bytes] = {}
    for pkg in PACKAGES:
        data = fetch(pkg)
        verify_tarball(pkg, data)
        files = members(pkg, data)
        for dest, content in files.items():
            written[vendor_dir / dest] = content
        entries.append(
            {
                "package": pkg.name,
                "version": pkg.version,
                "tarball": pkg.url,
                "tarball_sha256": pkg.tarball_sha256,
                "integrity": pkg.integrity,
                "files": {dest: sha256_hex(content) for dest, content in sorted(files.items())},
            }
        )
    manifest: dict[str, object] = {"packages": entries}
    for path, content in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (vendor_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(vendor_dir: Path) -> list[str]:
    """What differs between ``vendor_dir`` and its manifest (and the pins here); empty if none.

    Every file the manifest names must exist with its sha256, every package pinned here must
    be in the manifest at its pinned version and hashes, and no file under vendor_dir may be
    left unlisted (an extra script would be served as if it were vendored)."""
    problems: list[str] = []
    try:
        manifest = json.loads((vendor_dir / MANIFEST).read_text())
        entries = {e["package"]: e for e in manifest["packages"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST}: unreadable ({exc})"]
    listed: set[str] = {MANIFEST}
    for pkg in PACKAGES:
        entry = entries.get(pkg.name)
        if entry is None:
            problems.append(f"{pkg.name}: not in {MANIFEST}")
            continue
        for key, want in (
            ("version", pkg.version),
            ("tarball_sha256", pkg.tarball_sha256),
            ("integrity", pkg.integrity),
        ):
            if entry.get(key) != want:
                problems.append(f"{pkg.name}: {key} {entry.get(key)!r} != pinned {want!r}")
        files = entry.get("files", {})
        if set(files) != set(pkg.files.values()):
            problems.append(f"{pkg.name}: files {sorted(files)} != {sorted(pkg.files.values())}")
        for dest, digest in files.items():
            listed.add(dest)
            path = vendor_dir / dest
            if not path.is_file():
                problems.append(f"{dest}: missing")
            elif sha256_hex(path.read_bytes()) != digest:
                problems.append(f"{dest}: sha256 differs from {MANIFEST}")
    for extra in sorted(set(entries) - {p.name for p in PACKAGES}):
        problems.append(f"{extra}: in {MANIFEST} but not pinned in scripts/vendor_web.py")
    for path in sorted(vendor_dir.rglob("*")):
        rel = path.relative_to(vendor_dir).as_posix()
        if path.is_file() and rel not in listed:
            problems.append(f"{rel}: not listed in {MANIFEST}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="verify the files on disk, no network")
    args = parser.parse_args()
    if args.check:
        problems = check(VENDOR_DIR)
        for problem in problems:
            print(f"vendor_web: {problem}", file=sys.stderr)
        return 1 if problems else 0
    try:
        vendor(VENDOR_DIR)
    except VendorError as exc:
        print(f"vendor_web: {exc}", file=sys.stderr)
        return 1
    print(f"vendor_web: wrote {VENDOR_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
