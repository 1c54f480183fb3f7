"""Runs a command and writes what wait4 says of it (peak RSS, CPU time, wall) as JSON.

    python3 -S -E benches/batch/launch.py OUT.json CMD ARGS...

Why: a process started straight from benches/batch_peers.py would report that
script's own peak RSS (hundreds of MB of numpy, pyarrow, DuckDB, XGBoost) as its
`ru_maxrss` whenever that is larger, because the kernel carries the peak of the memory
a process had before exec into its rusage (subprocess forks with vfork). This launcher
is a small fresh interpreter (`-S`: no site packages, about 10 MB), so the command it
forks and execs starts from that floor. It writes its child's pid to OUT.json.pid at
once (for sampling /proc), forwards SIGTERM and SIGINT, and exits with the command's
exit code.
"""
import json
import os
import signal
import sys
import time


def main():
    out, cmd = sys.argv[1], sys.argv[2:]
    started = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    with open(out + ".pid", "w") as f:
        f.write(str(pid))

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    wall = time.time() - started
    with open(out + ".tmp", "w") as f:
        json.dump({"pid": pid, "started": started, "wall": wall, "maxrss_kb": usage.ru_maxrss,
                   "utime": usage.ru_utime, "stime": usage.ru_stime}, f)
    os.replace(out + ".tmp", out)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
