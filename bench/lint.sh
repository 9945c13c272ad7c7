#!/usr/bin/env bash
# Lint benchmark: 10,000 clusters + 10,000 ClusterLoadAssignments + 1,000
# RouteConfigurations + 100 listeners, release build, 5 runs.
# usage: bash bench/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
dir=target/bench-config
rm -rf "$dir"
python3 bench/gen_config.py "$dir"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for run in 1 2 3 4 5; do
  echo -n "run $run: "
  python3 bench/measure.py target/release/xdsd lint --dir "$dir"
done
