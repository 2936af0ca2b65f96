#!/usr/bin/env bash
# A volume group on three image files with plain LVs (linear, striped, extended),
# shown with pvs/vgs/lvs; then, when run as root with lvm2 installed, the same
# files attached as loop devices and listed by lvm2 itself.
#   bash examples/three_image_vg.sh      (after `bash install.sh`)
set -euo pipefail
cd "$(dirname "$0")/.."
lvcrypt=("$PWD/.venv/bin/python" -m lvcrypt)
work=$(mktemp -d)
loops=()
cleanup() {
    for loop in "${loops[@]}"; do losetup -d "$loop"; done
    rm -rf "$work"
}
trap cleanup EXIT
export LVCRYPT_STATE_DIR="$work/state" LVCRYPT_RUN_DIR="$work/run"
step() { printf '\n$ lvcrypt %s\n' "$*"; "${lvcrypt[@]}" "$@"; }

for i in 1 2 3; do truncate -s 64M "$work/pv$i.img"; done
devices="$work/pv1.img,$work/pv2.img,$work/pv3.img"
step pvcreate --devices "$devices" "$work/pv1.img" "$work/pv2.img" "$work/pv3.img"
step vgcreate --devices "$devices" -s 2m demo "$work/pv1.img" "$work/pv2.img" "$work/pv3.img"
step lvcreate --devices "$devices" -L 20M -n home demo
step lvcreate --devices "$devices" -i 3 -I 64k -L 48M -n scratch demo
step lvextend --devices "$devices" -L +10M demo/home
step pvs --devices "$devices"
step vgs --devices "$devices"
step lvs --devices "$devices" -o +seg_count,devices
step lvs --devices "$devices" --reportformat json -o lv_name,lv_size,segtype,stripes demo

if [ "$(id -u)" = 0 ] && command -v lvs >/dev/null && [ -e /dev/loop-control ]; then
    for i in 1 2 3; do loops+=("$(losetup -f --show "$work/pv$i.img")"); done
    printf '\n$ lvs --devices %s -o +devices   (lvm2 reading what lvcrypt wrote)\n' "$(IFS=,; echo "${loops[*]}")"
    LVM_SUPPRESS_FD_WARNINGS=1 lvs --devices "$(IFS=,; echo "${loops[*]}")" -o +devices demo 2>/dev/null
fi
