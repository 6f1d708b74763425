#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Install the Debian 12 packages that building, the demo and the tests
# need (only those missing). Run as root.
set -eu
pkgs="make clang gcc libbpf-dev libelf-dev zlib1g-dev bpftool iproute2
      postfix swaks openssl python3 tcpdump util-linux iputils-ping
      libnet-ssleay-perl libio-socket-inet6-perl procps ethtool
      libclang-rt-14-dev podman runc yamllint curl file man-db
      libpcap-dev gnutls-bin msmtp python3-aiosmtpd sasl2-bin libsasl2-modules
      libidn12 libevent-2.1-7 qemu-system-x86 busybox-static cpio xz-utils"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# Node.js and npm (the manifest check) may come from elsewhere than
# Debian (NodeSource's nodejs carries npm and conflicts with Debian's).
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself: not at all (the tests write their
# own configuration and run it only inside their namespaces).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
log=$(mktemp)
if ! apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	exit 1
fi
rm -f "$log"
