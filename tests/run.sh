#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash install.sh test
# Scratch files (PV images, lvm2 backups, pytest's tmp_path) on tmpfs when it has room: a commit
# fsyncs every PV, each fsync cost about 5 ms on this VM's disk, and the suite waited on them
# (a mover crash test: 67 s on disk, 40 s on tmpfs, the same CPU). Sync semantics are tested by
# the crash tests' write points, not by the disk. TMPDIR set by the caller wins.
if [ -z "${TMPDIR:-}" ] && [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -n 1)" -gt $((8 << 20)) ] 2>/dev/null; then
    export TMPDIR=/dev/shm
fi
# loadgroup: the kernel tests share one xdist group, so their QEMU guest boots once; the two-guest
# test has its own. Three workers on two cores: the guests' two workers mostly wait for QEMU (and
# QEMU for sanlock's leases), so the third keeps the host tests going meanwhile.
# --durations: the slowest tests in every log, where the suite's 20-minute budget goes.
# --max-worker-restart 0: a crashed worker (the OOM killer took one) ends the run red, naming the test.
# xdist's group scheduling re-queues a crashed worker's tests but never feeds the replacement worker:
# the run hung at 99% with every worker idle until CI's time ran out.
exec .venv/bin/python -m pytest -n 3 --dist loadgroup --max-worker-restart 0 -q --durations=25 "$@"
