#!/usr/bin/env bash
# The benchmark suite: release builds of xdsd and xds-load, each pinned to
# its own core where there are two, the scenarios of the README's
# performance table, and the table itself (Markdown) at the end.
#
# usage: bash bench/suite.sh [--quick]
#   --quick  small fleets (100 clients, 1 trial): checks that everything
#            runs and the figures are produced (.ci/run uses it), not speed.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true
if $quick; then
  big=200; fleet=100; trials=1; reload_clusters=500
else
  big=10000; fleet=1000; trials=5; reload_clusters=10000
fi

cargo build --release --quiet --bins
xdsd=target/release/xdsd
load=target/release/xds-load
work=target/bench-suite
rm -rf "$work"
mkdir -p "$work"

# Pinning: the server on core 0, the load generator on core 1 (when there are two).
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0); load_pin=(taskset -c 1)
else
  server_pin=(); load_pin=()
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# json FILE EXPR: EXPR over the report `d`; floats printed with one decimal.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(f'{v:.1f}' if isinstance(v, float) else v)" "$@"; }

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; fi
}
trap stop_server EXIT

# start_server DIR [FLAGS...]: starts xdsd (logging at $log_level) and waits for /readyz.
log_level=warn
start_server() {
  local dir=$1; shift
  xds_port=$(free_port); admin_port=$(free_port)
  "${server_pin[@]}" "$xdsd" serve --dir "$dir" --listen "127.0.0.1:$xds_port" \
    --admin "127.0.0.1:$admin_port" --log-level "$log_level" "$@" 2>>"$work/xdsd.log" &
  server_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "xdsd did not get ready; log:" >&2; tail -20 "$work/xdsd.log" >&2; exit 1
}

# sample_peak PID OUT: records the highest VmRSS of PID into OUT until PID's sampler is killed.
sample_peak() {
  local peak=0 now
  while kill -0 "$1" 2>/dev/null; do
    now=$(rss_kib "$1" 2>/dev/null || echo 0)
    [ "${now:-0}" -gt "$peak" ] && peak=$now && echo "$peak" >"$2"
    sleep 0.05
  done
}

# fleet NAME DIR CLIENTS MODE TRIALS: runs xds-load against the running server.
fleet() {
  local name=$1 dir=$2 clients=$3 mode=$4 trials_n=$5
  "${load_pin[@]}" "$load" --server "127.0.0.1:$xds_port" --clients "$clients" --mode "$mode" \
    --settle-ms 500 --timeout-s 120 --trials "$trials_n" \
    --trigger "sh bench/flip.sh $dir" --format json >"$work/$name.json"
}

rows=()
row() { rows+=("| $1 | $2 | $3 |"); }

mib() { echo "$(($1 / 1024)).$((($1 % 1024) * 10 / 1024)) MB"; }
# loader_pid: the loader process of the running server (empty when it has exited).
loader_pid() { pgrep -P "$server_pid" || true; }

# 1. Idle RSS, quickstart: the daemon once its loader process has exited
# (10 s after the last load), and the loader while it was there.
start_server config-examples/quickstart
loader=$(loader_pid)
loader_kib=$( [ -n "$loader" ] && rss_kib "$loader" || echo 0)
for _ in $(seq 1 300); do [ -z "$(loader_pid)" ] && break; sleep 0.1; done
idle_kib=$(rss_kib "$server_pid")
row "idle RSS, quickstart config" "< 10 MB" \
  "$(mib "$idle_kib") (the loader process, $(mib "$loader_kib"), exits 10 s after the last load)"
stop_server

# 2. Many concurrent SotW streams, 10 clusters; RSS sampled while they are connected.
dir=$work/ten
python3 bench/gen_config.py "$dir" 10 1 1 --variants >/dev/null
start_server "$dir" --debounce-ms 5
base_kib=$(rss_kib "$server_pid")
sample_peak "$server_pid" "$work/peak" &
sampler=$!
fleet streams "$dir" "$big" sotw 1
kill "$sampler" 2>/dev/null || true
peak_kib=$(cat "$work/peak")
sync_ms=$(json "$work/streams.json" 'd["initial_sync_ms"]')
synced=$(json "$work/streams.json" 'd["synced"]')
per_stream=$(( (peak_kib - base_kib) * 1024 / big / 1024 ))
row "$big concurrent SotW ADS streams, 10 clusters" "RSS < 500 MB (< 50 KB per stream), synced < 5 s" \
  "RSS $((peak_kib / 1024)) MB ($per_stream KB per stream), $synced synced in $sync_ms ms"
stop_server

# 3 and 4. Change → every client ACKed (one endpoint changes; --debounce-ms 5).
for clients in "$fleet" "$big"; do
  start_server "$dir" --debounce-ms 5
  fleet "change-$clients" "$dir" "$clients" sotw "$trials"
  p99=$(json "$work/change-$clients.json" 'sorted(t["p99_ms"] for t in d["trials"])[len(d["trials"])//2]')
  last=$(json "$work/change-$clients.json" 'max(t["last_ms"] for t in d["trials"])')
  updated=$(json "$work/change-$clients.json" 'min(t["updated"] for t in d["trials"])')
  row "change → every client ACKed, $clients clients" "p99 < $([ "$clients" = "$fleet" ] && echo 60 || echo 600) ms" \
    "p99 $p99 ms (median of $trials trials), slowest client $last ms; $updated/$clients updated"
  stop_server
done

# 5. 100 clients × 1,000 clusters, one cluster's endpoints change; SotW and Delta.
dir=$work/thousand
python3 bench/gen_config.py "$dir" 1000 100 1 --variants >/dev/null
for mode in sotw delta; do
  start_server "$dir" --debounce-ms 5
  fleet "wide-$mode" "$dir" 100 "$mode" "$trials"
  last=$(json "$work/wide-$mode.json" 'sorted(t["last_ms"] for t in d["trials"])[len(d["trials"])//2]')
  bytes=$(json "$work/wide-$mode.json" 'int(max(t["bytes_per_client"] for t in d["trials"]))')
  initial=$(json "$work/wide-$mode.json" 'int(d["initial_bytes_per_client"])')
  row "100 clients × 1,000 clusters, one endpoint change ($mode)" "every client ACKed < 100 ms" \
    "last client $last ms (median of $trials); $bytes bytes per client for the change ($initial initial)"
  stop_server
done

# 6. Reload of a large directory (read, validate, build the snapshot): the
# time xdsd logs for the reload, and its peak RSS.
dir=$work/reload
python3 bench/gen_config.py "$dir" "$reload_clusters" $((reload_clusters / 10)) 10 --variants >/dev/null
# No load generator here: xdsd gets both cores, as on a real VM.
log_level=info
pinned=("${server_pin[@]}"); server_pin=()
start_server "$dir" --debounce-ms 5
log_level=warn; server_pin=("${pinned[@]}")
sh bench/flip.sh "$dir"
for _ in $(seq 1 200); do grep -q 'reloaded' "$work/xdsd.log" && break; sleep 0.05; done
reload_ms=$(grep 'reloaded' "$work/xdsd.log" | tail -1 | sed -n 's/.*load_ms=\([0-9]*\).*/\1/p')
# The loader did the initial load and the reload: its high-water mark is a load's peak.
loader=$(loader_pid)
first_ms=$(grep ' loaded ' "$work/xdsd.log" | tail -1 | sed -n 's/.*load_ms=\([0-9]*\).*/\1/p')
row "reload of a $reload_clusters-cluster directory" "< 1 s, peak RSS < 300 MB" \
  "${reload_ms:-?} ms (the first, cold load: ${first_ms:-?} ms); peak RSS: loader process $(($( [ -n "$loader" ] && hwm_kib "$loader" || echo 0) / 1024)) MB, daemon $(($(hwm_kib "$server_pid") / 1024)) MB"
stop_server

# 7. One real Envoy: file rename → first request routed to the new cluster
# (default 100 ms debounce), as tests/it/serve.rs measures it.
source .ci/peers.sh
envoy_runs=$($quick && echo 1 || echo 5)
latencies=()
for _ in $(seq 1 "$envoy_runs"); do
  ms=$(cargo test --release --quiet --test it serve::live_update_new_cluster_and_route -- --nocapture 2>&1 \
    | sed -n 's/.*answered by backend-b in \([0-9.]*\)\(m\?s\).*/\1 \2/p' \
    | awk '{ if ($2 == "s") printf "%.1f", $1 * 1000; else printf "%.1f", $1 }')
  latencies+=("$ms")
done
row "one real Envoy, file rename → routed to the new cluster" "< 150 ms incl. 100 ms debounce" \
  "$(printf '%s ' "${latencies[@]}")ms ($envoy_runs runs)"

echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); xdsd on core 0, xds-load on core 1; $(date -u +%Y-%m-%d)."
echo
echo "| scenario | target | measured |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
