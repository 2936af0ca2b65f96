#!/usr/bin/env bash
# lvcrypt quickstart on a fresh Debian 12 machine (root): installs what it
# needs, then walks through lvcrypt on image files. No real disks are touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash install.sh
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "== Metadata files: validate, pretty-print, convert =="
cp examples/rfc_example.vg "$work/vg0.txt"
step lvcrypt metadata check "$work/vg0.txt"
step lvcrypt metadata show "$work/vg0.txt"
step lvcrypt metadata json "$work/vg0.txt"

echo
echo "== A broken file is refused with the line of the problem (exit status 5) =="
sed 's/crypto_store = "cryptostore1"/crypto_store = "nothere"/' "$work/vg0.txt" > "$work/broken.txt"
printf '\n$ lvcrypt metadata check broken.txt\n'
if lvcrypt metadata check "$work/broken.txt"; then exit 1; else echo "(exit status $?)"; fi
