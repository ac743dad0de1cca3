#!/usr/bin/env bash
# deps.sh - installs the Debian packages listed in tools/packages.txt that
# are missing (build: compiler, cmake, OpenSSL 3, libevent, json-c, cmocka,
# zstd, LZ4; tests and demo: QEMU, the guest's kernel and busybox, iproute2).
# Needs root when something is missing; does nothing otherwise.
set -euo pipefail
list="$(dirname "$0")/packages.txt"
missing=()
while read -r pkg; do
	[ -n "$pkg" ] || continue
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$pkg")
done <"$list"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}; run as root" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
