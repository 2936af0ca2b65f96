#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash install.sh test
# loadgroup: the kernel tests share one xdist group, so their QEMU guest boots once.
exec .venv/bin/python -m pytest -n 2 --dist loadgroup -q "$@"
