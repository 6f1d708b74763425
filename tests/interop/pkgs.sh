# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
# tests/interop/pkgs.sh - Debian packages that cannot be installed beside
# Postfix (Exim, OpenSMTPD: every MTA package conflicts with the others)
# are downloaded and unpacked into a private root, and run from there
# with configuration files of their own.
#
#     source tests/interop/pkgs.sh
#     interop_unpack exim4-daemon-light exim4-base || exit 1
#     "$INTEROP_ROOT/usr/sbin/exim4" -C my.conf ...
#
# The .deb files are kept in $INTEROP_CACHE (build/interop/debs), so a
# second run needs no network. Their library dependencies are ordinary
# packages installed by tests/install-deps.sh.

INTEROP_CACHE=${INTEROP_CACHE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/interop/debs}
INTEROP_ROOT=${INTEROP_ROOT:-$(dirname "$INTEROP_CACHE")/root}
export INTEROP_CACHE INTEROP_ROOT

# interop_unpack PKG...: each package's candidate version, downloaded
# into the cache if missing and unpacked into $INTEROP_ROOT.
interop_unpack() {
	local p deb ver out
	mkdir -p "$INTEROP_CACHE" "$INTEROP_ROOT" || return 1
	for p in "$@"; do
		ver=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/ *Candidate: //p')
		if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
			apt-get update -qq >/dev/null 2>&1
			ver=$(apt-cache policy "$p" | sed -n 's/ *Candidate: //p')
		fi
		if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
			echo "interop: no candidate for package $p" >&2
			return 1
		fi
		# The file name apt-get download writes: epoch colon as %3a.
		deb=$INTEROP_CACHE/${p}_${ver//:/%3a}_amd64.deb
		[ -e "$deb" ] || deb=$INTEROP_CACHE/${p}_${ver//:/%3a}_all.deb
		if [ ! -e "$deb" ]; then
			if ! out=$(cd "$INTEROP_CACHE" && apt-get download -qq "$p=$ver" 2>&1); then
				echo "interop: apt-get download $p failed: $(tail -n2 <<<"$out")" >&2
				return 1
			fi
			deb=$(ls "$INTEROP_CACHE/${p}_${ver//:/%3a}"_*.deb 2>/dev/null | head -n1)
			[ -n "$deb" ] || { echo "interop: $p: no .deb after download" >&2; return 1; }
		fi
		[ -e "$INTEROP_ROOT/.unpacked-$p-$ver" ] && continue
		dpkg -x "$deb" "$INTEROP_ROOT" &&
			touch "$INTEROP_ROOT/.unpacked-$p-$ver" ||
			{ echo "interop: dpkg -x $deb failed" >&2; return 1; }
	done
}
