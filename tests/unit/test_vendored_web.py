"""The vendored web code (xterm.js) is the registry's: the committed files match
VENDORED.json and the pins in scripts/vendor_web.py, and a changed, missing or extra file
is named. No network: this runs the script's --check logic."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_web", ROOT / "scripts" / "vendor_web.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


vendor_web = _load_script()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dest = tmp_path / "vendor"
    shutil.copytree(vendor_web.VENDOR_DIR, dest)
    return dest


def test_committed_files_match_the_manifest_and_the_pins() -> None:
    assert vendor_web.check(vendor_web.VENDOR_DIR) == []


def test_every_pinned_file_is_listed_with_its_hash() -> None:
    manifest = json.loads((vendor_web.VENDOR_DIR / vendor_web.MANIFEST).read_text())
    listed = {dest for e in manifest["packages"] for dest in e["files"]}
    assert listed == {
        "xterm/xterm.js",
        "xterm/xterm.css",
        "xterm/addon-fit.js",
        "xterm/LICENSE-xterm",
        "xterm/LICENSE-addon-fit",
    }


def test_a_tampered_file_is_named(copy: Path) -> None:
    target = copy / "xterm" / "xterm.js"
    target.write_bytes(target.read_bytes() + b"\n;fetch('/steal')\n")
    assert vendor_web.check(copy) == ["xterm/xterm.js: sha256 differs from VENDORED.json"]


def test_a_missing_file_is_named(copy: Path) -> None:
    (copy / "xterm" / "addon-fit.js").unlink()
    assert vendor_web.check(copy) == ["xterm/addon-fit.js: missing"]


def test_an_unlisted_file_is_named(copy: Path) -> None:
    (copy / "xterm" / "extra.js").write_text("alert(1)\n")
    assert vendor_web.check(copy) == ["xterm/extra.js: not listed in VENDORED.json"]


def test_a_manifest_rewritten_to_match_a_tampered_file_still_fails_the_pins(copy: Path) -> None:
    """Editing the file and its hash in the manifest is not enough: the tarball pins live in
    the script, and the manifest must name them."""
    manifest_path = copy / vendor_web.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["packages"][0]["version"] = "6.0.1"
    manifest_path.write_text(json.dumps(manifest))
    assert vendor_web.check(copy) == ["@xterm/xterm: version '6.0.1' != pinned '6.0.0'"]


def test_a_tarball_that_differs_from_the_pins_is_refused() -> None:
    pkg = vendor_web.PACKAGES[0]
    with pytest.raises(vendor_web.VendorError, match="tarball sha256"):
        vendor_web.verify_tarball(pkg, b"not the tarball")


def test_the_check_command_exits_1_naming_the_mismatch(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "xterm" / "xterm.css").write_text("body{}")
    monkeypatch.setattr(vendor_web, "VENDOR_DIR", copy)
    monkeypatch.setattr(sys, "argv", ["vendor_web.py", "--check"])
    assert vendor_web.main() == 1
    assert "xterm/xterm.css: sha256 differs" in capsys.readouterr().err
