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
. "$(dirname "$0")/exited.sh"
until exited "$old"; do
  sleep 0.01
done
# Not on our stdout: whoever reads the trigger's output would wait for xdsd.
"$@" </dev/null >/dev/null 2>>"$log" &
echo $! >"$pidfile"
