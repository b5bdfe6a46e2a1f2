#!/bin/sh
# Unpacks Linux 6.12's source from Debian's linux-source-6.12 package into
# BUILD_DIR/selftests/src (with `make headers` done) and prints the path of
# its KVM selftests directory. Shared by selftests.sh and survey-selftests.sh.
#
#   scripts/selftests-src.sh BUILD_DIR
#
# The kernel source is a test input, never part of the repository: the
# package's tarball is taken from /usr/src if installed, else fetched with
# `apt-get download` into BUILD_DIR/selftests (no root needed; one
# `apt-get update` is tried first when the download fails and we are root).
# Stamps keep the work for later runs.
set -eu

build=$1
pkg=linux-source-6.12
dir=$build/selftests

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
src=$dir/src

fetch_tarball() {
	if [ -f /usr/src/$pkg.tar.xz ]; then
		echo /usr/src/$pkg.tar.xz
		return
	fi
	if ! ls "$dir"/${pkg}_*.deb >/dev/null 2>&1; then
		echo "selftests: fetching $pkg with apt-get download" >&2
		if ! (cd "$dir" && apt-get download -q $pkg >&2); then
			if [ "$(id -u)" = 0 ]; then
				apt-get update -qq >&2
				(cd "$dir" && apt-get download -q $pkg >&2)
			else
				echo "selftests: cannot download $pkg (try: sudo apt-get update)" >&2
				exit 2
			fi
		fi
	fi
	deb=$(ls "$dir"/${pkg}_*.deb | tail -n 1)
	if [ ! -f "$dir/deb/usr/src/$pkg.tar.xz" ]; then
		rm -rf "$dir/deb"
		dpkg-deb -x "$deb" "$dir/deb"
	fi
	echo "$dir/deb/usr/src/$pkg.tar.xz"
}

if [ ! -f "$src/.unpacked" ]; then
	tarball=$(fetch_tarball)
	echo "selftests: unpacking $tarball" >&2
	rm -rf "$src"
	mkdir -p "$src"
	tar -xf "$tarball" -C "$src" --strip-components=1
	touch "$src/.unpacked"
fi
if [ ! -f "$src/.headers" ]; then
	echo "selftests: make headers" >&2
	make -s -C "$src" headers >/dev/null
	touch "$src/.headers"
fi
echo "$src/tools/testing/selftests/kvm"
