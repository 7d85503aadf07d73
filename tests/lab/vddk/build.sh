#!/usr/bin/env bash
# Build the lab's VDDK stand-in: OUTDIR/vddk/lib64/libvixDiskLib.so.8 (+ libvixDiskLib.so symlink) and the variant
# without QueryAllocatedBlocks/FreeBlockList in OUTDIR/vddk-noqab/lib64/. Usage: build.sh OUTDIR (default: build).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-build}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CC="${CC:-gcc}"
CFLAGS=(-O2 -g -fPIC -shared -pthread -std=gnu11 -Wall -Wextra -Wno-unused-parameter -fvisibility=hidden)
SOURCES=("$HERE/standin.c" "$HERE/disk.c" "$HERE/net.c" "$HERE/transport.c" "$HERE/async.c")

build() {  # build DIR EXTRA_CFLAGS...
    local dir="$OUT/$1/lib64"
    shift
    mkdir -p "$dir"
    "$CC" "${CFLAGS[@]}" "$@" -I"$HERE" -Wl,-soname,libvixDiskLib.so.8 -Wl,--no-undefined \
        -o "$dir/libvixDiskLib.so.8.tmp" "${SOURCES[@]}" -lssl -lcrypto
    mv -f "$dir/libvixDiskLib.so.8.tmp" "$dir/libvixDiskLib.so.8"
    ln -sfn libvixDiskLib.so.8 "$dir/libvixDiskLib.so"
}

build vddk
build vddk-noqab -DLAB_NO_QAB
echo "built $OUT/vddk/lib64/libvixDiskLib.so.8 and $OUT/vddk-noqab/lib64/libvixDiskLib.so.8"
