#!/usr/bin/env bash
# The benchmark suite: release builds of xdsd and xds-load, each pinned to
# its own core where there are two, the scenarios of the README's
# performance table, and the table itself (Markdown) at the end.
#
# Every fleet is xds-load behaving like Envoy (node on every request,
# endpoints and routes asked for before the ACK, reconnection with Envoy's
# backoff), one connection per client unless said otherwise. A change is a
# file renamed into place, as editors and deploy tools do:
#   add a cluster and route to it   bench/add_route.sh (make-before-break)
#   an endpoint change              bench/flip.sh
#   a restart of xdsd               bench/restart.sh
#
# usage: bash bench/suite.sh [--quick]
#   --quick  small fleets (1 trial): checks that everything runs and the
#            figures are produced (.ci/run uses it), not speed.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true
if $quick; then
  big=200; fleet=100; huge=500; trials=1; reload_clusters=500; per_node=(100 200)
else
  big=10000; fleet=1000; huge=50000; trials=5; reload_clusters=10000; per_node=(1000 5000 10000)
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
# median FILE KEY: the median over the trials of KEY.
median() { json "$1" "sorted(t['$2'] for t in d['trials'])[len(d['trials'])//2]"; }
# Listen queue overflows of the whole machine (SYNs dropped because a backlog was full).
overflows() { nstat -az TcpExtListenOverflows 2>/dev/null | awk '/TcpExtListenOverflows/ {print $2}' || echo 0; }

. bench/exited.sh
# The server's pid lives in a file: a restart trial replaces the process.
pidfile=$work/xdsd.pid
stop_server() {
  if [ -s "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    until exited "$pid"; do sleep 0.02; done
    wait "$pid" 2>/dev/null || true
    : >"$pidfile"
  fi
}
trap stop_server EXIT
server_pid() { cat "$pidfile"; }

# start_server DIR [FLAGS...]: starts xdsd (logging at $log_level) and waits for /readyz.
log_level=warn
start_server() {
  local dir=$1; shift
  xds_port=$(free_port); admin_port=$(free_port)
  server_cmd=("${server_pin[@]}" "$xdsd" serve --dir "$dir" --listen "127.0.0.1:$xds_port"
    --admin "127.0.0.1:$admin_port" --log-level "$log_level" "$@")
  "${server_cmd[@]}" 2>>"$work/xdsd.log" &
  echo $! >"$pidfile"
  for _ in $(seq 1 600); do
    curl -sf "127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "xdsd did not get ready; log:" >&2; tail -20 "$work/xdsd.log" >&2; exit 1
}

# sample_peak PID OUT: records the highest VmRSS of PID into OUT until the sampler is killed.
sample_peak() {
  local peak=0 now
  echo 0 >"$2"
  while kill -0 "$1" 2>/dev/null; do
    now=$(rss_kib "$1" 2>/dev/null || echo 0)
    [ "${now:-0}" -gt "$peak" ] && peak=$now && echo "$peak" >"$2"
    sleep 0.05
  done
}

# fleet NAME CLIENTS MODE TRIALS TRIGGER [FLAGS...]: runs xds-load against the running server;
# a change is over when no client received anything for $settle_ms.
settle_ms=500
fleet() {
  local name=$1 clients=$2 mode=$3 trials_n=$4 trigger=$5; shift 5
  "${load_pin[@]}" "$load" --server "127.0.0.1:$xds_port" --clients "$clients" --mode "$mode" \
    --settle-ms "$settle_ms" --timeout-s 180 --trials "$trials_n" --trigger "$trigger" --format json "$@" \
    >"$work/$name.json" || true
  if [ "$(json "$work/$name.json" 'd["synced"]')" != "$clients" ]; then
    echo "$name: not every client synced: $(cat "$work/$name.json")" >&2
  fi
}

rows=()
row() { rows+=("| $1 | $2 | $3 |"); }

mib() { echo "$(($1 / 1024)).$((($1 % 1024) * 10 / 1024)) MB"; }
# loader_pid: the loader process of the running server (empty when it has exited).
loader_pid() { pgrep -P "$(server_pid)" || true; }
# responses NAME: "N responses per client" over the trials (min–max when they differ).
responses() {
  local lo hi
  lo=$(json "$work/$1.json" 'min(t["responses_min"] for t in d["trials"])')
  hi=$(json "$work/$1.json" 'max(t["responses_max"] for t in d["trials"])')
  if [ "$lo" = "$hi" ]; then echo "responses per client: $lo"; else echo "responses per client: $lo–$hi"; fi
}
# latency NAME: "p99 X ms (median of N trials), slowest client Y ms; U/C updated".
latency() {
  echo "p99 $(median "$work/$1.json" p99_ms) ms (median of $trials), slowest client $(json "$work/$1.json" 'max(t["last_ms"] for t in d["trials"])') ms; $(json "$work/$1.json" 'min(t["updated"] for t in d["trials"])')/$(json "$work/$1.json" 'd["clients"]') updated"
}

# The fleet's directory: 10 clusters, one listener, routes-0 in moving.yaml.
ten=$work/ten
python3 bench/gen_config.py "$ten" 10 1 1 --variants --moving >/dev/null

# 1. Idle RSS, quickstart: the daemon once its loader process has exited
# (10 s after the last load), and the loader while it was there.
start_server config-examples/quickstart
loader=$(loader_pid)
loader_kib=$( [ -n "$loader" ] && rss_kib "$loader" || echo 0)
for _ in $(seq 1 300); do [ -z "$(loader_pid)" ] && break; sleep 0.1; done
idle_kib=$(rss_kib "$(server_pid)")
row "idle RSS, quickstart config" "< 10 MB" \
  "$(mib "$idle_kib") (the loader process, $(mib "$loader_kib"), exits 10 s after the last load)"
stop_server

# 2. Connect storm: N fresh clients connect at once (no limit on
# concurrent connects); the listen queue must not overflow. At $big
# clients, the memory per stream too (RSS sampled while they are connected).
for clients in "$fleet" "$big"; do
  start_server "$ten" --debounce-ms 5
  base_kib=$(rss_kib "$(server_pid)")
  sample_peak "$(server_pid)" "$work/peak" &
  sampler=$!
  before=$(overflows)
  fleet "storm-$clients" "$clients" sotw 0 true --connect-concurrency "$clients"
  after=$(overflows)
  kill "$sampler" 2>/dev/null || true
  peak_kib=$(cat "$work/peak")
  row "connect storm, $clients clients" "synced < $([ "$clients" = "$fleet" ] && echo 150 ms || echo 1.5 s); 0 listen overflows" \
    "$(json "$work/storm-$clients.json" 'd["synced"]') synced in $(json "$work/storm-$clients.json" 'd["initial_sync_ms"]') ms; $((after - before)) listen overflows"
  if [ "$clients" = "$big" ]; then
    row "memory per stream, $big streams" "< 30 KB" \
      "$(( (peak_kib - base_kib) / big )) KB (RSS $((peak_kib / 1024)) MB, $((base_kib / 1024)) MB before they connected)"
  fi
  stop_server
done

# 3. Add a cluster and route to it (make-before-break): the cluster, its
# endpoints, then the route; every client ACKs three responses.
add_route() {
  local name=$1 clients=$2 mode=$3 target=$4; shift 4
  start_server "$ten" --debounce-ms 5
  fleet "$name" "$clients" "$mode" "$trials" "sh bench/add_route.sh $ten"
  row "add cluster + route, $clients $mode clients$*" "$target" "$(latency "$name"); $(responses "$name")"
  stop_server
}
add_route add-sotw-$fleet "$fleet" sotw "p99 < 40 ms"
add_route add-sotw-$big "$big" sotw "p99 < 300 ms"
add_route add-delta-$big "$big" delta "p99 < 250 ms"

# 4. An endpoint change: one response per client.
start_server "$ten" --debounce-ms 5
fleet "endpoints-$big" "$big" sotw "$trials" "sh bench/flip.sh $ten"
row "endpoint change, $big sotw clients" "p99 < 150 ms" "$(latency "endpoints-$big"); $(responses "endpoints-$big")"
stop_server

# 5. A restart of xdsd under a connected fleet, with --state-dir: SIGTERM,
# a new process, every client back on a stream; nothing is re-sent (the
# clients' versions are the set's). The time includes the clients' own
# backoff (Envoy's: jittered, from 500 ms).
mkdir -p "$work/state"
start_server "$ten" --debounce-ms 5 --state-dir "$work/state"
fleet "restart-$big" "$big" sotw "$trials" "sh bench/restart.sh $pidfile $work/xdsd.log ${server_cmd[*]}"
row "restart of xdsd, $big sotw clients, --state-dir" "all re-synced < 3 s; 0 resources re-sent" \
  "last client back on a stream after $(median "$work/restart-$big.json" last_ms) ms (median of $trials; p99 $(median "$work/restart-$big.json" p99_ms) ms); $(json "$work/restart-$big.json" 'max(t["bytes_per_client"] for t in d["trials"])') bytes re-sent per client, $(json "$work/restart-$big.json" 'min(t["reconnected"] for t in d["trials"])')/$big reconnected"
stop_server

# 6. $huge streams: over 10 streams per connection, because this machine's
# open-file limit (ulimit -Hn) is below one socket per stream on each side.
start_server "$ten" --debounce-ms 5 --max-clients $((huge + huge / 10))
sample_peak "$(server_pid)" "$work/peak" &
sampler=$!
fleet "huge" "$huge" sotw "$trials" "sh bench/add_route.sh $ten" --streams-per-connection 10
kill "$sampler" 2>/dev/null || true
row "$huge sotw streams (10 per connection), add cluster + route" "synced < 10 s; p99 < 2 s; RSS < 1.5 GB" \
  "$(json "$work/huge.json" 'd["synced"]') synced in $(json "$work/huge.json" 'd["initial_sync_ms"]') ms; $(latency huge); RSS $(($(cat "$work/peak") / 1024)) MB"
stop_server

# 7. Unpinned: xdsd (and the generator) on both cores.
pinned=("${server_pin[@]}"); pinned_load=("${load_pin[@]}"); server_pin=(); load_pin=()
add_route add-unpinned "$big" sotw "(how it scales)" ", both cores shared"
server_pin=("${pinned[@]}"); load_pin=("${pinned_load[@]}")

# 8. Per-node resources: each of N nodes has a cluster of its own (N
# selectors), plus the shared set. A shared change (add cluster + route)
# and a change to node 0's own cluster only; the time xdsd logs to build
# every connected node's view of the new set; peak RSS.
for n in "${per_node[@]}"; do
  dir=$work/own-$n
  python3 bench/gen_config.py "$dir" 10 1 1 --variants --moving --own "$n" >/dev/null
  # A reload of N own clusters takes a while before anything is sent.
  log_level="warn,xdsd::daemon::serve=info"; settle_ms=2000
  start_server "$dir" --debounce-ms 5
  sample_peak "$(server_pid)" "$work/peak" &
  sampler=$!
  fleet "own-shared-$n" "$n" sotw "$trials" "sh bench/add_route.sh $dir"
  fleet "own-one-$n" "$n" sotw "$trials" "sh bench/flip_own.sh $dir"
  kill "$sampler" 2>/dev/null || true
  views_ms=$(grep 'reloaded' "$work/xdsd.log" | grep -o "views=$n views_ms=[0-9.]*" | sed 's/.*views_ms=//' | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}')
  row "$n nodes, each with its own cluster, add cluster + route (shared)" "$([ "$n" = 10000 ] && echo 'synced < 3 s; p99 < 1 s; views < 100 ms' || echo '(scaling)')" \
    "$(json "$work/own-shared-$n.json" 'd["synced"]') synced in $(json "$work/own-shared-$n.json" 'd["initial_sync_ms"]') ms; $(latency "own-shared-$n"); views of the $n nodes built in ${views_ms:-?} ms (median); RSS $(($(cat "$work/peak") / 1024)) MB"
  row "$n nodes, each with its own cluster, node 0's cluster changes" "that node ACKed < 50 ms; nobody else sent anything" \
    "node 0 ACKed after $(median "$work/own-one-$n.json" last_ms) ms (median of $trials); clients sent anything: $(json "$work/own-one-$n.json" 'max(t["updated"] for t in d["trials"])')"
  log_level=warn; settle_ms=500
  stop_server
done
# The same change and fleet size with one view shared by all, for comparison.
add_route "add-sotw-shared-${per_node[1]}" "${per_node[1]}" sotw "per-node p99 within 2× of this" " (one shared view)"

# 9. 100 clients × 1,000 clusters, one cluster's endpoints change; SotW and Delta.
dir=$work/thousand
python3 bench/gen_config.py "$dir" 1000 100 1 --variants >/dev/null
for mode in sotw delta; do
  start_server "$dir" --debounce-ms 5
  fleet "wide-$mode" 100 "$mode" "$trials" "sh bench/flip.sh $dir"
  bytes=$(json "$work/wide-$mode.json" 'int(max(t["bytes_per_client"] for t in d["trials"]))')
  initial=$(json "$work/wide-$mode.json" 'int(d["initial_bytes_per_client"])')
  row "100 clients × 1,000 clusters, one endpoint change ($mode)" "every client ACKed < 100 ms" \
    "last client $(median "$work/wide-$mode.json" last_ms) ms (median of $trials); $bytes bytes per client for the change ($initial initial)"
  stop_server
done

# 10. Reload of a large directory (read, validate, build the snapshot): the
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
  "${reload_ms:-?} ms (the first, cold load: ${first_ms:-?} ms); peak RSS: loader process $(($( [ -n "$loader" ] && hwm_kib "$loader" || echo 0) / 1024)) MB, daemon $(($(hwm_kib "$(server_pid)") / 1024)) MB"
stop_server

# 11. Lint of 21,100 resources (bench/lint.sh's directory), one run.
if ! $quick; then
  python3 bench/gen_config.py "$work/lint" >/dev/null
  row "lint of 21,100 resources" "< 1 s" "$(python3 bench/measure.py "$xdsd" lint --dir "$work/lint" | sed 's/^exit [0-9]*, //')"
fi

# 12. One real Envoy: file rename → first request routed to the new cluster
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
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); xdsd on core 0, xds-load on core 1 (unless said); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(date -u +%Y-%m-%d)."
echo
echo "| scenario | target | measured |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
