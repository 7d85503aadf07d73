#!/bin/sh
# Build the lab's vCenter simulator with Debian's go (GOPATH mode, govmomi 0.24.2 from golang-github-vmware-govmomi-dev).
# Usage: tests/lab/vcsim/build.sh OUTPUT_BINARY   (works from any cwd; OUTPUT relative to the cwd)
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTPUT_BINARY" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$1
case "$out" in
    /*) ;;
    *) out="$(pwd)/$out" ;;
esac
mkdir -p "$(dirname "$out")" "$root/build/gocache"
cd "$here"
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="$root/build/gocache" CGO_ENABLED=0 \
    go build -o "$out" .
