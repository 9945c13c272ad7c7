#!/usr/bin/env bash
# Long runs of the property tests ("fuzzing" on the stable toolchain, where
# cargo-fuzz's libFuzzer needs nightly): the loader on arbitrary and
# Envoy-shaped text, and the xDS engine on request sequences. `.ci/run`
# runs the same tests with proptest's default 256 cases each.
#
# usage: bash bench/fuzz.sh [CASES]    (default 200000 per property)
set -euo pipefail
cd "$(dirname "$0")/.."
PROPTEST_CASES="${1:-200000}" cargo test --release --lib fuzz -- --nocapture
