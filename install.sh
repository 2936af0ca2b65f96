#!/usr/bin/env bash
# Installs what lvcrypt needs on a Debian 12 machine (run as root): the Debian
# packages it uses or tests against, a virtualenv in .venv, and the project
# in it (editable, with the test extras when asked: `bash install.sh test`).
set -euo pipefail
cd "$(dirname "$0")"

# libkeyutils1: lvcrypt's keyring calls go through it (keyutils depends on it too).
# gcc, libssl-dev, python3-dev: pip builds lvcrypt's two compiled modules at install (setup.py): the data
# path's sector loop over OpenSSL's libcrypto (lvcrypt/crypto/_sectors.c) and the metadata parser's fast
# path (metadata/_plain_layout.c).
packages=(python3-venv lvm2 cryptsetup-bin keyutils libkeyutils1 fuse3 e2fsprogs util-linux gcc libssl-dev python3-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "test" ]; then
    # The kernel test tier's guest (tests/kernel/README.md): Debian's kernel, QEMU (TCG),
    # busybox for its initramfs, dmsetup; without recommends (QEMU's GUI, firmware).
    # lvm2-lockd and sanlock: lvmlockd with disk leases, run in the guest for shared VGs (issue 18).
    kernel_missing=()
    for package in linux-image-amd64 qemu-system-x86 busybox-static dmsetup kmod lvm2-lockd sanlock; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || kernel_missing+=("$package")
    done
    if [ ${#kernel_missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${kernel_missing[@]}" >/dev/null
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
target="."
[ "${1:-}" = "test" ] && target=".[test]"
.venv/bin/pip install -q --disable-pip-version-check -e "$target"
# The project's bytecode, written now: an editable install leaves none, and where
# PYTHONDONTWRITEBYTECODE is set (these machines set it) every lvcrypt process would compile its
# modules from source again: 0.38 s instead of 0.13 s per command here, ten times that in the
# kernel tier's emulated guest. A source changed later is compiled in memory as usual.
.venv/bin/python -m compileall -q -j 0 lvcrypt metadata handlers >/dev/null
