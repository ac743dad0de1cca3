#!/bin/sh
# Build the wanmig integration-test guest.
#
# Debian packages needed: busybox-static linux-image-amd64 cpio gzip xz-utils
# (plus gcc/libc6-dev for the static workload; zstd/lz4/bzip2 only if the
# installed kernel happens to use that compression).
#
# Usage: tests/guest/build.sh [OUTDIR]        (default: build/guest)
#
# Produces in OUTDIR:
#   vmlinux             uncompressed kernel extracted from the bzImage (PVH
#                       entry; boots much faster under TCG than the bzImage)
#   bzImage             copy of the bzImage (fallback if PVH boot fails)
#   workload            the static guest workload (tests/guest/workload.c)
#   initramfs.cpio.gz   busybox + /init + workload + /fill (real files used
#                       as memory-fill content)
#
# Environment: WM_KERNEL=/path/to/vmlinuz to choose the kernel (default: the
# newest /boot/vmlinuz-*), CC (default gcc), WM_FORCE=1 to rebuild.
# Idempotent: does nothing when all outputs are newer than all inputs.
set -eu

SRCDIR=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-build/guest}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CC=${CC:-gcc}
export LC_ALL=C

log() { echo "guest/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- inputs
if [ -n "${WM_KERNEL:-}" ]; then
    KERNEL=$WM_KERNEL
else
    KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$KERNEL" ] && [ -r "$KERNEL" ] ||
    die "no kernel found (install linux-image-amd64 or set WM_KERNEL)"
BUSYBOX=""
for b in /bin/busybox /usr/bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then BUSYBOX=$b; break; fi
done
[ -n "$BUSYBOX" ] || die "no static busybox found (install busybox-static)"

# Real files copied into the initramfs as fill content.  Missing ones are
# skipped; only the first few MB of text are taken.
fill_files() {
    echo "$BUSYBOX"
    for f in libc.so.6 libm.so.6 libstdc++.so.6 libcrypto.so.3 libz.so.1 \
             libgcc_s.so.1; do
        p=/usr/lib/x86_64-linux-gnu/$f
        [ -e "$p" ] && readlink -f "$p"
    done
    ls /usr/share/common-licenses/* 2>/dev/null
    ls /usr/share/doc/*/copyright 2>/dev/null | head -n 150
    ls /usr/share/doc/*/changelog.Debian.gz 2>/dev/null | head -n 10
}

INPUTS="$SRCDIR/build.sh $SRCDIR/workload.c $KERNEL $BUSYBOX"

outputs_fresh() {
    [ "${WM_FORCE:-0}" = 1 ] && return 1
    for o in vmlinux bzImage workload initramfs.cpio.gz .kernel; do
        [ -e "$OUT/$o" ] || return 1
    done
    [ "$(cat "$OUT/.kernel")" = "$KERNEL" ] || return 1
    for i in $INPUTS; do
        for o in vmlinux bzImage workload initramfs.cpio.gz; do
            [ "$OUT/$o" -nt "$i" ] || return 1
        done
    done
    return 0
}

if outputs_fresh; then
    log "up to date in $OUT"
    exit 0
fi

# ---------------------------------------------------------------- kernel
extract_vmlinux() {
    # Find the compressed payload inside the bzImage and decompress it.
    # Try every occurrence of each format's magic until one yields an ELF.
    img=$1 dst=$2
    for fmt in 'xz:\xfd7zXZ\x00:xz -dc --single-stream' \
               'gzip:\x1f\x8b\x08:gzip -dc' \
               'zstd:\x28\xb5\x2f\xfd:zstd -dcq' \
               'lz4:\x02\x21\x4c\x18:lz4 -dcq' \
               'lzma:\x5d\x00\x00\x00:xz -dc --format=lzma' \
               'bzip2:BZh:bzip2 -dcq'; do
        name=${fmt%%:*}; rest=${fmt#*:}
        magic=${rest%%:*}; tool=${rest#*:}
        command -v "${tool%% *}" >/dev/null 2>&1 || continue
        for off in $(grep -obUaP "$magic" "$img" 2>/dev/null |
                     cut -d: -f1 | head -n 5); do
            tail -c +$((off + 1)) "$img" | $tool >"$dst.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$dst.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                mv "$dst.tmp" "$dst"
                log "extracted vmlinux ($name payload at offset $off)"
                return 0
            fi
        done
    done
    rm -f "$dst.tmp"
    return 1
}

cp -f "$KERNEL" "$OUT/bzImage"
if ! extract_vmlinux "$KERNEL" "$OUT/vmlinux"; then
    # Keep going: the test library falls back to the bzImage.
    log "warning: could not extract an ELF vmlinux from $KERNEL; using bzImage"
    cp -f "$KERNEL" "$OUT/vmlinux.bzImage-fallback"
    rm -f "$OUT/vmlinux"
    ln -s bzImage "$OUT/vmlinux"
fi

# ---------------------------------------------------------------- workload
$CC -std=c11 -O2 -Wall -Wextra -Werror -static -s \
    -o "$OUT/workload" "$SRCDIR/workload.c"

# ---------------------------------------------------------------- initramfs
STAGE=$OUT/initramfs.d
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/sbin" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" \
         "$STAGE/tmp" "$STAGE/fill" "$STAGE/root" "$STAGE/etc"
cp "$BUSYBOX" "$STAGE/bin/busybox"
for a in $("$BUSYBOX" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$STAGE/bin/$a"
done
cp "$OUT/workload" "$STAGE/bin/workload"

n=0
fill_files | while read -r f; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cp -L "$f" "$STAGE/fill/$(printf %04d "$n")-$(basename "$f")"
done

cat >"$STAGE/init" <<'EOF'
#!/bin/sh
# wanmig test guest init (PID 1)
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
echo "wm-init kernel=$(uname -r)"
# console output goes to the serial port (console=ttyS0)
/bin/workload </dev/null
echo "wm-exit status=$?"
poweroff -f
EOF
chmod 755 "$STAGE/init"

(cd "$STAGE" && find . -print | sort |
    cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
fill_bytes=$(du -sb "$STAGE/fill" | cut -f1)
rm -rf "$STAGE"
echo "$KERNEL" >"$OUT/.kernel"
touch "$OUT/vmlinux" "$OUT/bzImage" "$OUT/workload"
log "built $OUT (kernel $KERNEL, fill corpus $fill_bytes bytes," \
    "initramfs $(wc -c <"$OUT/initramfs.cpio.gz") bytes)"
