#!/bin/sh
# Install the Debian packages that building, testing and the demo need.
# Idempotent: does nothing when everything is present; runs `apt-get update`
# at most once, and only when something is missing.
set -eu

PKGS="gcc libc6-dev pkg-config meson ninja-build git
libfuse3-dev fuse3 libarchive-dev libgit2-dev libelf-dev libcmocka-dev
libsodium-dev libunwind-dev ansible tar xz-utils zip
shellcheck man-db groff-base procps libcapstone-dev wrk
g++ gdb binutils libdw-dev libjson-c-dev patch
debhelper dpkg-dev clang libclang-rt-dev util-linux mount coreutils"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
