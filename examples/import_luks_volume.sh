#!/usr/bin/env bash
# Import a LUKS2 volume made by cryptsetup on a plain LV into an lvcrypt crypt LV,
# in place (metadata only), use it, add a passphrase, and export it back to a
# plain LV that cryptsetup opens again. Runs on image files (root, for
# cryptsetup's locking); no real disk is touched. Needs `bash install.sh` first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d)
export LVCRYPT_STATE_DIR="$work/state" LVCRYPT_RUN_DIR="$work/run"
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
devices="$work/pv1.img"
fast=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)  # cheap PBKDF for a demo; never for real data

echo "== A volume group with a plain 16 MiB LV, as an old system would have it =="
truncate -s 64M "$work/pv1.img"
step lvcrypt pvcreate --devices "$devices" "$work/pv1.img"
step lvcrypt vgcreate --devices "$devices" vg0 "$work/pv1.img"
step lvcrypt lvcreate --devices "$devices" -L 16M -n old vg0

echo
echo "== cryptsetup makes a LUKS2 volume holding known data, with an unusual payload offset (2056 sectors) =="
printf 'an old passphrase' > "$work/pass"
head -c 16M /dev/urandom > "$work/data"
cp "$work/data" "$work/luks.img"
step cryptsetup reencrypt --encrypt --type luks2 --offset 2056 --reduce-device-size 4112s \
    --force-offline-reencrypt "${fast[@]}" --key-file "$work/pass" -q "$work/luks.img"
cryptsetup luksDump "$work/luks.img" | sed -n '/Data segments/,/sector:/p'
echo "  ... and that device becomes the LV's content (the LV 'already held a LUKS volume'):"
step lvcrypt write --devices "$devices" vg0/old < "$work/luks.img"

echo
echo "== Import: the header's extent becomes keystore cryptostore0, the rest crypt segments; no data moves =="
step lvcrypt lvconvert --devices "$devices" --type crypt --verify --key-file "$work/pass" vg0/old
step lvcrypt lvs --devices "$devices" -a -o lv_name,lv_size,segtype,devices,crypt_handler,crypt_keystore vg0
step lvcrypt vgcfgbackup --devices "$devices" -f "$work/vg0.txt" vg0
echo "  The crypt segment starts in the keystore's last extent and skips the header with data_offset:"
sed -n '/^\t\told {/,/^\t\t}/p' "$work/vg0.txt"

echo
echo "== The decrypted LV is what cryptsetup open showed: the data reencrypt kept (16 MiB minus 2 x 1028 KiB) =="
kept=$((16 * 1048576 - 4112 * 512))
printf '\n$ lvcrypt read --key-file pass --length %s vg0/old | cmp - <(head -c %s data)\n' "$kept" "$kept"
lvcrypt read --devices "$devices" --key-file "$work/pass" --length "$kept" vg0/old | cmp - <(head -c "$kept" "$work/data")
echo "identical"

echo
echo "== A second passphrase, added by lvcrypt to the imported keystore =="
printf 'a new passphrase' > "$work/new"
step lvcrypt keyslot add --devices "$devices" --key-file "$work/pass" --new-key-file "$work/new" "${fast[@]}" \
    vg0/cryptostore0

echo
echo "== Export: a plain LV again, whose bytes are a LUKS device cryptsetup opens with either passphrase =="
step lvcrypt lvconvert --devices "$devices" --type linear vg0/old
lvcrypt read --devices "$devices" vg0/old > "$work/exported.img"
step cryptsetup open --test-passphrase --key-file "$work/new" "$work/exported.img"
step cryptsetup open --test-passphrase --key-file "$work/pass" "$work/exported.img"
cmp <(tail -c +$((2056 * 512 + 1)) "$work/exported.img") <(tail -c +$((2056 * 512 + 1)) "$work/luks.img")
echo "the payload is byte for byte the one cryptsetup wrote"
