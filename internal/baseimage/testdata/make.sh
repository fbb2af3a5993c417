#!/bin/sh
# Remakes the GNU tar archives the tests and fuzz targets start from.
# sparse: 64 KiB, six 4 KiB data blocks (A..F) at 0, 8K, ..., 40K, holes between.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/t"
truncate -s 64K "$tmp/t/sparse"
i=0
for c in A B C D E F; do
	head -c 4096 /dev/zero | tr '\0' "$c" | dd of="$tmp/t/sparse" bs=4096 seek=$((i * 2)) conv=notrunc status=none
	i=$((i + 1))
done
touch -d @1700000000 "$tmp/t/sparse"
opts="-C $tmp/t --owner=0 --group=0 --numeric-owner --mtime=@1700000000 --sparse"
for v in 0.0 0.1 1.0; do
	tar $opts --format=posix --pax-option=delete=atime,delete=ctime --sparse-version=$v -cf - sparse | gzip -9n > sparse-pax$v.tar.gz
done
tar $opts --format=gnu -cf - sparse | gzip -9n > sparse-gnu.tar.gz
