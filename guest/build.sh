#!/bin/bash
# Builds the Ferry test guest (Debian cloud kernel + busybox initramfs running ./init).
# Output: out/<hash>/{vmlinuz,initrd.img,cmdline}, out/current -> <hash>.
# Progress goes to stderr; the last line on stdout is the absolute output dir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=$here/.cache
out=$here/out

# Loaded by init in this order (dependencies first), listed in /lib/modules/order.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
         virtio_blk failover net_failover virtio_net button evdev)
cmdline="console=ttyS0 quiet panic=-1"

log() { echo "guest/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs Debian package $2 if command $1 is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2
}
need cpio cpio
need gzip gzip
# The initramfs needs the statically linked busybox; the plain "busybox" package is dynamic.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    log "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static >&2
fi
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing after installing busybox-static"

# --- 1. kernel package (downloaded once, then reused offline) ---
mkdir -p "$cache" "$out"
deb=
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '/Depends: linux-image-/ { print $2; exit }') || true
if [ -n "$kpkg" ]; then
    kver=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }') || true
    deb=$cache/${kpkg}_${kver}_amd64.deb
    if [ -z "$kver" ] || [ ! -f "$deb" ]; then
        log "downloading $kpkg $kver"
        # Runs unsandboxed as root; apt's warning about the _apt user is harmless.
        (cd "$cache" && apt-get download -q "$kpkg" >&2) || log "download of $kpkg failed"
        deb=$(ls -1 "$cache/${kpkg}_"*.deb 2>/dev/null | sort -V | tail -n 1) || true
    fi
fi
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
    # No package lists (or offline): use the newest cloud kernel already cached.
    deb=$(ls -1 "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n 1) || true
    [ -n "$deb" ] || die "no linux-image-*-cloud-amd64 package available (apt-get update?)"
fi
log "kernel package: ${deb##*/}"

# --- 2. content hash -> output dir ---
sha() { sha256sum "$1" | cut -d' ' -f1; }
hash=$(printf '%s\n' "$(sha "$deb")" "$(sha "$busybox")" "$(sha "$here/init")" \
       "$(sha "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-16)
dest=$out/$hash

set_current() {  # atomically repoint out/current
    ln -sfn "$hash" "$out/.current.$$"
    mv -T "$out/.current.$$" "$out/current"
}
complete() { [ -f "$dest/vmlinuz" ] && [ -f "$dest/initrd.img" ] && [ -f "$dest/cmdline" ]; }

if complete; then
    log "up to date: $dest"
    set_current
    echo "$dest"
    exit 0
fi

# --- 3. build in a temp dir next to the output, then rename into place ---
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP  # so the EXIT trap also cleans up when interrupted
log "extracting kernel"
dpkg-deb -x "$deb" "$tmp/deb"

root=$tmp/root
result=$tmp/result
mkdir -p "$root"/{bin,dev,sys,proc,www,tmp,lib/modules} "$result"

vmlinuz=$(ls -1 "$tmp"/deb/boot/vmlinuz-* 2>/dev/null | head -n 1) || true
[ -n "$vmlinuz" ] || die "no vmlinuz in ${deb##*/}"
cp "$vmlinuz" "$result/vmlinuz"

moddir=$(ls -d "$tmp"/deb/{usr/,}lib/modules/*/kernel 2>/dev/null | head -n 1) || true
[ -n "$moddir" ] || die "no modules dir in ${deb##*/}"
for m in "${modules[@]}"; do
    f=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -n 1)
    [ -n "$f" ] || die "module $m not found in ${deb##*/}"
    # busybox insmod wants plain .ko files, so decompress here.
    case $f in
        *.ko.xz)  need xz xz-utils; xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *.ko.zst) need zstd zstd;   zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
        *)        cp "$f" "$root/lib/modules/$m.ko" ;;
    esac
    # Check the load order against the module's own "depends=" modinfo field.
    deps=$(tr '\0' '\n' <"$root/lib/modules/$m.ko" | sed -n 's/^depends=//p' | tr ',' ' ')
    for d in $deps; do
        [ -f "$root/lib/modules/$d.ko" ] || die "$m needs $d, which is not loaded before it"
    done
done
printf '%s\n' "${modules[@]}" >"$root/lib/modules/order"

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
install -m 755 "$here/init" "$root/init"

log "packing initramfs"
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --quiet --null -o -H newc --owner=0:0 --reproducible) | gzip -9n >"$result/initrd.img"
echo "$cmdline" >"$result/cmdline"

# A concurrent build may have won the race; its result is identical.
mv -T "$result" "$dest" 2>/dev/null || complete || die "could not create $dest"
set_current
log "built $dest"
echo "$dest"
