#!/usr/bin/env bash
# Install Mezite into .venv and bring up a local cluster whose state lives in
# ./.mezite-demo. Safe to run again: it restarts the cluster with the same CAs.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "Mezite needs Python 3.11+ with venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .

DEMO=$PWD/.mezite-demo
BIN=$PWD/.venv/bin
mkdir -p "$DEMO"
if [ -f "$DEMO/auth.pid" ] && kill -0 "$(cat "$DEMO/auth.pid")" 2>/dev/null; then
  kill "$(cat "$DEMO/auth.pid")"; sleep 1
fi
rm -f "$DEMO/data/auth.json"
nohup "$BIN/mezctl" start --data-dir "$DEMO/data" --listen 127.0.0.1:3025 \
  --cluster-name demo >"$DEMO/auth.log" 2>&1 &
echo $! >"$DEMO/auth.pid"
for _ in $(seq 100); do [ -f "$DEMO/data/auth.json" ] && break; sleep 0.1; done
if [ ! -f "$DEMO/data/auth.json" ]; then
  echo "the auth service did not start; its log:" >&2; cat "$DEMO/auth.log" >&2; exit 1
fi

"$BIN/mezctl" status --data-dir "$DEMO/data"
cat <<MSG

Mezite's auth service is running (log: $DEMO/auth.log, pid $(cat "$DEMO/auth.pid")).
  status:  $BIN/mezctl status --data-dir $DEMO/data
  stop:    kill \$(cat $DEMO/auth.pid)
MSG
