#!/usr/bin/env bash
# Install Mezite into .venv and bring up a local cluster in ./.mezite-demo: the auth
# service and proxy (127.0.0.1:3025, :3080), one node (127.0.0.1:3022) and a demo user
# whose login is your own OS user. Safe to run again: it restarts the cluster with the
# same CAs, node and user.
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
if ! command -v ssh >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
  else
    echo "mez ssh uses OpenSSH's ssh: install openssh-client" >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e . keyrings.alt

DEMO=$PWD/.mezite-demo
BIN=$PWD/.venv/bin
mkdir -p "$DEMO" && chmod 700 "$DEMO"
for svc in node auth; do
  if [ -f "$DEMO/$svc.pid" ] && kill -0 "$(cat "$DEMO/$svc.pid")" 2>/dev/null; then
    kill "$(cat "$DEMO/$svc.pid")"
    for _ in $(seq 50); do kill -0 "$(cat "$DEMO/$svc.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
done

wait_for() {  # wait_for FILE LOG WHAT
  for _ in $(seq 150); do [ -f "$1" ] && return 0; sleep 0.1; done
  echo "$3 did not start; its log:" >&2; cat "$2" >&2; exit 1
}

rm -f "$DEMO/data/auth.json" "$DEMO/data/proxy.json"
nohup "$BIN/mezctl" start --data-dir "$DEMO/data" --cluster-name demo \
  --listen 127.0.0.1:3025 --web-listen 127.0.0.1:3080 --proxy-ssh-listen 127.0.0.1:3023 \
  >"$DEMO/auth.log" 2>&1 &
echo $! >"$DEMO/auth.pid"
wait_for "$DEMO/data/proxy.json" "$DEMO/auth.log" "the auth service"

ctl() { "$BIN/mezctl" "$@" --data-dir "$DEMO/data"; }
PIN=$(ctl status --format json | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["ca_pin"])')

if [ ! -f "$DEMO/node/identity.json" ]; then
  TOKEN=$(ctl tokens add --type node --ttl 5m --labels env=demo --format json |
    "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  "$BIN/mezd" join --token "$TOKEN" --auth-server 127.0.0.1:3025 --ca-pin "$PIN" \
    --name demo-node --advertise-addr 127.0.0.1:3022 --data-dir "$DEMO/node" >/dev/null
fi
nohup "$BIN/mezd" start --data-dir "$DEMO/node" --listen 127.0.0.1:3022 \
  --heartbeat-interval 5 >"$DEMO/node.log" 2>&1 &
echo $! >"$DEMO/node.pid"

LOGIN=$(id -un)
if [ ! -f "$DEMO/demo-password" ]; then
  (umask 077; "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$DEMO/demo-password")
  ctl users add demo --roles access --logins "$LOGIN" --password-stdin <"$DEMO/demo-password" >/dev/null
fi
for _ in $(seq 100); do
  ctl audit events --type join --since 1h --format json >/dev/null 2>&1 && break; sleep 0.1
done
# Wait until the node has reported in, so `mez ls` shows it right away.
for _ in $(seq 100); do grep -q "heartbeat\|serving SSH" "$DEMO/node.log" 2>/dev/null && break; sleep 0.1; done

ctl status
KEYRING=""
if ! "$BIN/python" -c 'import keyring, sys; b = keyring.get_keyring()
sys.exit(1 if type(b).__module__.startswith(("keyring.backends.fail", "keyrings.alt")) else 0)' 2>/dev/null; then
  # No desktop keyring here (headless): keep the demo session in a plain keyring file.
  KEYRING="PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring "
fi
cat <<MSG

A local Mezite cluster is running (logs in $DEMO/*.log):
  auth + proxy  127.0.0.1:3025 (gRPC), https://127.0.0.1:3080 (web UI and API), 127.0.0.1:3023 (SSH)
  node          demo-node at 127.0.0.1:3022, labels env=demo
  user          demo, password in $DEMO/demo-password, may log in as $LOGIN

Log in and connect:
  ${KEYRING}$BIN/mez login --proxy 127.0.0.1:3080 --user demo --ca-pin $PIN --password-stdin < $DEMO/demo-password
  ${KEYRING}$BIN/mez ls
  ${KEYRING}$BIN/mez ssh demo-node id

Or in a browser: https://127.0.0.1:3080/ as demo, then Nodes > Connect (the certificate is
from the cluster's own CA: import the output of \`$BIN/mezctl export --type tls-ca --data-dir
$DEMO/data\` into the browser, or accept the warning).

Stop it:  kill \$(cat $DEMO/auth.pid) \$(cat $DEMO/node.pid)
MSG
