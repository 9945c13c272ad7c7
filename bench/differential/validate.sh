#!/usr/bin/env bash
# Runs Envoy's own `--mode validate` on resource files or directories, as
# the differential harness and the rule fixtures do: exit 0 when Envoy
# accepts them, 1 with Envoy's message when it rejects them.
#   bash bench/differential/validate.sh FILE_OR_DIR...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
envoy="${ENVOY_BIN:-$root/target/envoy-venv/bin/envoy}"
python="${PYTHON_BIN:-$root/target/envoy-venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" "$here/envoy_bootstrap.py" "$@" > "$tmp/bootstrap.json"
"$envoy" --mode validate --disable-hot-restart --log-level error -c "$tmp/bootstrap.json"
