#!/usr/bin/env python3
"""Runs a command and prints its wall time and peak resident memory (RSS)."""
import resource
import subprocess
import sys
import time

start = time.monotonic()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.monotonic() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"exit {proc.returncode}, {elapsed:.3f} s wall, peak RSS {peak_kib / 1024:.1f} MiB")
