#!/usr/bin/env bash
# Install the test dependencies and run the whole suite: lint, types, generated-code
# freshness and pytest (unit, integration against real servers, e2e with real processes),
# then the unit tests again on the lowest dependency versions pyproject.toml allows (so a
# floor cannot claim more than the code keeps). Arguments go to pytest and skip the
# lowest-versions run: `bash scripts/test.sh tests/unit -k keyring`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need=()
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v ssh >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# Programs that run `mez ssh` as their ssh, tested end to end.
command -v rsync >/dev/null || need+=(rsync)
command -v git >/dev/null || need+=(git)
# Recordings exported by mezctl are played by Debian's asciinema (tests/e2e/test_recordings_e2e.py).
command -v asciinema >/dev/null || need+=(asciinema)
# The PostgreSQL backend's tests run a throwaway server (initdb + pg_ctl; as root, as
# the postgres user the package creates).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# The session in real keyrings (tests/e2e/test_keyrings_e2e.py): gnome-keyring's Secret
# Service on a dbus-run-session bus, read back with secret-tool and locked with dbus-send;
# the kernel's user keyring through libkeyutils, read back with keyctl.
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
{ command -v dbus-run-session && command -v dbus-send; } >/dev/null || need+=(dbus)
command -v keyctl >/dev/null || need+=(keyutils)
# The web UI's browser tests (tests/e2e/test_web_ui_e2e.py) drive Debian's Chromium through
# Playwright, never a downloaded browser; a font, so that the terminal's text renders.
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them, e.g. with apt-get)" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/python scripts/gen_proto.py --check
.venv/bin/python scripts/gen_completions.py --check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
if [ $# -eq 0 ]; then
  "$PY" scripts/lowest_versions.py
fi
