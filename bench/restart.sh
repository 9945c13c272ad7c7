#!/bin/sh
# The change of a restart trial: stops the xdsd whose pid is in PIDFILE
# (SIGTERM, as systemd does), waits until it has exited, and starts
# COMMAND in its place, appending its stderr to LOG and its pid to PIDFILE.
# The clients reconnect by themselves.
# usage: restart.sh PIDFILE LOG COMMAND...
set -e
pidfile=$1; log=$2; shift 2
old=$(cat "$pidfile")
kill "$old"
# Exited, and its sockets closed: the process is gone, or it is a zombie
# (its parent has not reaped it yet) with no thread left but the leader;
# the sockets close only when the last thread has exited.
exited() {
  [ ! -e "/proc/$1" ] && return 0
  grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null && [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -le 1 ]
}
until exited "$old"; do
  sleep 0.01
done
# Not on our stdout: whoever reads the trigger's output would wait for xdsd.
"$@" </dev/null >/dev/null 2>>"$log" &
echo $! >"$pidfile"
