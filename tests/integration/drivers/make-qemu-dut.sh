#!/usr/bin/env bash
# Builds the QEMU test DUT: Debian's 6.1 kernel and a busybox-static initramfs whose /init prints
# "boot complete" and runs a shell on the console.
#
# make-qemu-dut.sh OUTDIR: writes OUTDIR/vmlinuz and OUTDIR/initramfs.gz. The kernel package is
# downloaded once into the cache directory ($JMP_TEST_CACHE, default /var/cache/jumpstarter-tests)
# and reused by later runs. A failed download is an error: the Debian archive is part of the test
# environment, as it is in CI.
set -euo pipefail

OUT=${1:?usage: make-qemu-dut.sh OUTDIR}
CACHE=${JMP_TEST_CACHE:-/var/cache/jumpstarter-tests}
BUSYBOX=${BUSYBOX:-/bin/busybox}

mkdir -p "$OUT" "$CACHE"
exec 9> "$CACHE/.qemu-kernel.lock"
# Two runs at once share one download.
flock 9

KDIR=$CACHE/linux-image
if [ ! -e "$KDIR/.complete" ]; then
        pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 | sort -V | tail -n1)
        [ -n "$pkg" ] || { echo "make-qemu-dut: no linux-image-6.1.0-*-amd64 package in the apt lists (apt-get update?)" >&2; exit 1; }
        dl=$(mktemp -d "$CACHE/download.XXXXXX")
        # apt drops privileges to _apt for downloads: the directory must be writable by it.
        chmod 0777 "$dl"
        if ! (cd "$dl" && apt-get download -q "$pkg" >&2); then
                rm -rf "$dl"
                echo "make-qemu-dut: failed to download $pkg from the Debian archive" >&2
                exit 1
        fi
        rm -rf "$KDIR"
        mkdir -p "$KDIR"
        dpkg-deb -x "$dl"/*.deb "$KDIR"
        rm -rf "$dl"
        echo "$pkg" > "$KDIR/.complete"
fi

vmlinuz=$(ls "$KDIR"/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
cp "$vmlinuz" "$OUT/vmlinuz"

# The initramfs: busybox, the virtio modules for the disk, and /init.
root=$(mktemp -d "$OUT/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"

# virtio_blk and what it needs, in load order. The package has no modules.dep (depmod makes it at
# install) and this machine may have no kmod: the dependencies come from each module's .modinfo.
moddir=$KDIR/lib/modules/$kver
mods=()
add_module() {
        local path dep m
        path=$(find "$moddir/kernel" -name "$1.ko" | head -n1)
        [ -n "$path" ] || { echo "make-qemu-dut: module $1 not found in $moddir" >&2; exit 1; }
        for m in "${mods[@]:-}"; do [ "$m" = "$path" ] && return 0; done
        for dep in $(tr '\0' '\n' < "$path" | sed -n 's/^depends=//p' | tr ',' ' '); do
                add_module "$dep"
        done
        mods+=("$path")
}
add_module virtio_pci
add_module virtio_blk
: > "$root/lib/modules/order"
for m in "${mods[@]}"; do
        cp "$m" "$root/lib/modules/"
        echo "/lib/modules/${m##*/}" >> "$root/lib/modules/order"
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do insmod "$m" 2>/dev/null; done
echo "boot complete"
# A shell with the console as its controlling terminal; when it exits, the machine powers off.
setsid cttyhack sh
poweroff -f
INIT
chmod 0755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initramfs.gz"
