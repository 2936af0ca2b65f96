#!/bin/bash
# Regenerate the lvm2-made VG fixtures (*.vg) in this directory.
#
# The LV types need device-mapper targets (thin, raid, mirror, cache, integrity...), which
# the host kernel lacks, so this runs in the kernel test guest (real dm, lvm2 2.03.16):
#
#     python tests/kernel/guest.py -- bash tests/data/lvm2_types/make_fixtures.sh
#
# Each fixture is one VG on its own loop devices, saved with `vgcfgbackup -f NAME.vg`; the
# PV count and sizes a fixture needs are in its physical_volumes section (dev_size).
# Extents are 1 MiB and PVs small so the matrix test can copy every image for every case.
# No vdo fixture: the guest kernel (Debian 6.1) has no dm-vdo/kvdo module.
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /var/tmp/lvm2-types.XXXXXX)
export LVM_SUPPRESS_FD_WARNINGS=1 LC_ALL=C
# No udev in the guest; record removed LVs as historical LVs for the history fixture only.
CONFIG='activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }'

modprobe -a loop dm_mod dm_snapshot dm_mirror dm_log dm_thin_pool dm_raid dm_cache \
    dm_cache_smq dm_writecache dm_integrity raid1 raid10 raid456

DEVS=""
LOOPS=()

# mkvg VG COUNT SIZE_MIB: COUNT fresh loop devices of SIZE_MIB each (the last one LAST_MIB:
# room for lvcrypt's own LVs, a LUKS2 keystore takes 16 MiB), one VG over them.
LAST_MIB=40
mkvg() {
    local vg=$1 count=$2 size=$3 i dev
    LOOPS=()
    for ((i = 0; i < count; i++)); do
        truncate -s "$( ((i == count - 1)) && echo "$LAST_MIB" || echo "$size")M" "$WORK/$vg$i.img"
        dev=$(losetup -f --show "$WORK/$vg$i.img")
        LOOPS+=("$dev")
    done
    DEVS=$(IFS=,; echo "${LOOPS[*]}")
    lvm pvcreate -q --config "$CONFIG" --devices "$DEVS" "${LOOPS[@]}"
    lvm vgcreate -q --config "$CONFIG" --devices "$DEVS" -s 1M "$vg" "${LOOPS[@]}"
}

# l CMD ARGS...: an lvm2 command on the current VG's devices.
l() {
    local cmd=$1
    shift
    lvm "$cmd" --config "$CONFIG" --devices "$DEVS" "$@"
}

# save VG: write NAME.vg, deactivate, detach.
save() {
    local vg=$1
    l vgcfgbackup -q -f "$OUT/$vg.vg" "$vg"
    sed -i "s|$OUT/||; s|$WORK/||g" "$OUT/$vg.vg"
    chmod 644 "$OUT/$vg.vg"
    l vgchange -q -an "$vg" || true
    for dev in "${LOOPS[@]}"; do losetup -d "$dev"; done
    rm -f "$WORK/$vg"*.img
    echo "saved $vg"
}

# Linear (two segments on two PVs) and striped LVs.
mkvg linear_striped 2 16
l lvcreate -q -y -L 2M -n lin linear_striped "${LOOPS[0]}"
l lvcreate -q -y -L 2M -n lin2 linear_striped "${LOOPS[0]}"
l lvextend -q -L +2M linear_striped/lin "${LOOPS[1]}"
l lvcreate -q -y -i 2 -I 64k -L 4M -n striped linear_striped
save linear_striped

# Thin pool with two thin LVs and a thin snapshot (lvm2 adds lvol0_pmspare).
mkvg thin 2 16
l lvcreate -q -y --type thin-pool -L 4M --poolmetadatasize 2M -n pool thin
l lvcreate -q -y --type thin -V 8M --thinpool pool -n thin1 thin
l lvcreate -q -y --type thin -V 8M --thinpool pool -n thin2 thin
l lvcreate -q -y -s -n tsnap thin/thin1
l lvcreate -q -y -L 2M -n plain thin
save thin

# Old-style snapshots: one plain, one merging (origin inactive, merge deferred).
mkvg snap 2 16
l lvcreate -q -y -L 4M -n origin snap
l lvcreate -q -y -s -L 2M -n snap1 snap/origin
l lvcreate -q -y -L 4M -n origin2 snap
l lvcreate -q -y -s -L 2M -n msnap snap/origin2
l lvchange -q -an snap/origin2
l lvconvert -q --merge snap/msnap
save snap

# raid1, raid5 over 3 PVs, raid10 over 4 PVs.
mkvg raid 4 16
l lvcreate -q -y --type raid1 -m 1 -L 2M -n r1 raid
l lvcreate -q -y --type raid5 -i 2 -I 64k -L 2M -n r5 raid
l lvcreate -q -y --type raid10 -m 1 -i 2 -I 64k -L 2M -n r10 raid
save raid

# Mirrors with a core log and with a disk log (3 PVs: two legs and the log).
mkvg mirror 3 16
l lvcreate -q -y --type mirror -m 1 --mirrorlog core -L 2M -n mcore mirror
l lvcreate -q -y --type mirror -m 1 --mirrorlog disk -L 2M -n mdisk mirror
save mirror

# dm-cache with a cache pool, and dm-writecache with a cache volume.
mkvg cache 2 24
l lvcreate -q -y -L 4M -n cached cache "${LOOPS[0]}"
l lvcreate -q -y --type cache-pool -L 4M -n cpool cache "${LOOPS[1]}"
l lvconvert -q -y --type cache --cachepool cache/cpool cache/cached
l lvcreate -q -y -L 4M -n wcached cache "${LOOPS[0]}"
l lvcreate -q -y -an -Zn -L 2M -n wcvol cache "${LOOPS[1]}"
l lvconvert -q -y --type writecache --cachevol cache/wcvol cache/wcached
save cache

# dm-integrity under raid1 images.
mkvg integrity 2 16
l lvcreate -q -y --type raid1 -m 1 --raidintegrity y -L 4M -n rint integrity
save integrity

# Historical LVs: a removed thin snapshot and a removed thin LV, recorded by lvm2.
mkvg history 1 16
HIST="$CONFIG metadata { record_lvs_history = 1 }"
l lvcreate -q -y --type thin-pool -L 4M --poolmetadatasize 2M -n pool history
l lvcreate -q -y --type thin -V 8M --thinpool pool -n thin1 history
l lvcreate -q -y -s -n tsnap history/thin1
l lvcreate -q -y -s -n tsnap2 history/tsnap
lvm lvremove -q -y --config "$HIST" --devices "$DEVS" history/tsnap
l lvcreate -q -y --type thin -V 8M --thinpool pool -n gone history
lvm lvremove -q -y --config "$HIST" --devices "$DEVS" history/gone
save history

# Everything at once next to plain LVs that nothing references.
mkvg mixed 3 24
l lvcreate -q -y -L 2M -n plain1 mixed "${LOOPS[0]}"
l lvcreate -q -y --type thin-pool -L 4M --poolmetadatasize 2M -n pool mixed
l lvcreate -q -y --type thin -V 8M --thinpool pool -n thin1 mixed
l lvcreate -q -y -L 4M -n origin mixed
l lvcreate -q -y -s -L 2M -n snap mixed/origin
l lvcreate -q -y --type raid1 -m 1 -L 2M -n r1 mixed
l lvcreate -q -y --type mirror -m 1 --mirrorlog core -L 2M -n m1 mixed
l lvcreate -q -y -L 2M -n plain2 mixed "${LOOPS[2]}"
save mixed

rmdir "$WORK"
