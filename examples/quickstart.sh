#!/usr/bin/env bash
# lvcrypt quickstart on a fresh Debian 12 machine (root): installs what it
# needs, then builds an encrypted LV on image files. No real disk is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash install.sh
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d)
export LVCRYPT_STATE_DIR="state" LVCRYPT_RUN_DIR="run"
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
examples="$PWD/examples"
cd "$work"

echo "== Three 128 MiB image files become physical volumes of one volume group =="
for i in 1 2 3; do truncate -s 128M "pv$i.img"; done
step lvcrypt pvcreate pv1.img pv2.img pv3.img
step lvcrypt vgcreate vg0 pv1.img pv2.img pv3.img
echo "(pvcreate remembers image files in the devices file of \$LVCRYPT_STATE_DIR, so no --devices is needed)"

echo
echo "== An encrypted LV (LUKS2 keystore, passphrase from a key file) and a plain one =="
printf 'correct horse battery staple' > passphrase
step lvcrypt lvcreate --encrypt --key-file "passphrase" \
    --pbkdf pbkdf2 --iter-time 200 -L 32M -n secret vg0
step lvcrypt lvcreate -L 16M -n plain vg0
step lvcrypt lvs -a -o lv_name,lv_size,segtype,devices,crypt_handler,crypt_cipher,crypt_keystore vg0

echo
echo "== Data written through the userspace data path and read back =="
head -c 1000000 /dev/urandom > "data.bin"
printf 'Attack at dawn. ' | head -c 16 > "message"
cat "message" "data.bin" > "payload"
step lvcrypt write --key-file "passphrase" vg0/secret < "payload"
printf '\n$ lvcrypt read vg0/secret --length 1000016 | cmp - payload\n'
lvcrypt read --key-file "passphrase" --length 1000016 vg0/secret | cmp - "payload"
echo "identical"

echo
echo "== On the PV the data is ciphertext: the message is nowhere in the image files =="
if grep -q "Attack at dawn" "$work"/pv*.img; then echo "plaintext found!"; exit 1; fi
echo "'Attack at dawn' does not occur in pv1.img, pv2.img or pv3.img"
step lvcrypt table vg0/secret

echo
echo "== The metadata lvcrypt wrote (lvm2's text format, with crypt and crypt-keystore segments) =="
step lvcrypt vgcfgbackup -f "vg0.txt" vg0
step lvcrypt metadata show "vg0.txt"
sed -n '/logical_volumes {/,$p' "vg0.txt"

echo
echo "== A wrong passphrase is refused (exit status 5) =="
printf 'wrong' > "wrong"
printf '\n$ lvcrypt read --key-file wrong vg0/secret\n'
if lvcrypt read --key-file "wrong" --length 16 vg0/secret; then exit 1; else echo "(exit status $?)"; fi
