#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Run every suite (host unit tests, packet tests, end-to-end tests) and end
# with one line "N passed, N failed" summing them. Needs root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
total_pass=0
total_fail=0

if [ "$(id -u)" != 0 ]; then
	echo "the tests load BPF programs and make network namespaces: run as root" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

suite() { # NAME CMD...
	local name=$1 out last p f
	shift
	echo "== $name"
	out=$("$@" 2>&1)
	printf '%s\n' "$out"
	last=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)
	if [ -z "$last" ]; then
		echo "FAIL - $name: no result line"
		total_fail=$((total_fail + 1))
		return
	fi
	p=${last%% passed*}
	f=${last#*passed, }
	f=${f%% failed*}
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
}

suite "protocol logic (host)" "$build/test_smtp"
suite "packets (BPF_PROG_TEST_RUN)" "$build/test_packets"
suite "end to end (namespaces, Postfix)" bash "$here/e2e.sh"
suite "replay (captures)" bash "$here/replay.sh"
suite "interop (servers x clients)" bash "$here/interop/interop.sh"
suite "operations (daemon, container, install, manifests)" bash "$here/ops.sh"
suite "kernels (5.10, 6.1, 6.12 under qemu; this machine's)" bash "$here/kernels/kernels.sh"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
