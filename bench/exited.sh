# Sourced by bench/suite.sh and bench/restart.sh (POSIX sh).
# exited PID: true once the process has exited and its sockets are closed:
# it is gone, or a zombie (its parent has not reaped it yet) with no thread
# left but the leader; a leader already in state Z while other threads
# still run holds the listening sockets until the last thread exits.
exited() {
  [ ! -e "/proc/$1" ] && return 0
  grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null && [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -le 1 ]
}
