#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# tests/kernels/steps.sh BIN_DIR - what tests/kernels/kernels.sh runs on
# each kernel: as /init's work in a qemu guest (busybox sh), or on the
# machine's own kernel inside "unshare -n". BIN_DIR holds the static
# starttls-guard, test_packets and smtp_pair. Prints the packet suite's
# output, then one line per step: "@@ ok STEP" or "@@ FAIL STEP: why".
#   1. the packet suite (BPF_PROG_TEST_RUN) against the real program;
#   2. attach to a veth pair between two namespaces, a plaintext MAIL
#      reset and a STARTTLS + TLS-record exchange passed, the counters,
#      detach, and nothing left (the same MAIL is then answered);
#      on 6.6 and newer once with --tc-mode tcx and once with clsact,
#      before 6.6 with auto, which must choose clsact;
#   3. on kernels without bpf_loop (before 5.17): --scanner loop is
#      refused with the kernel's version and the verifier's words, and
#      nothing is left attached.
# Ends with "@@ end" once every step has run.
B=$1
G=$B/starttls-guard
export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/stg-kernels-$$

T=$(mktemp -d /tmp/stg-steps.XXXXXX) || exit 1
server='' holder=''
cleanup() {
	trap '' INT TERM
	[ -n "$server" ] && kill "$server" 2>/dev/null
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	ip link del stgk0 2>/dev/null
	rm -rf "$T" "$STARTTLS_GUARD_PIN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "@@ ok $*"; }
bad() { echo "@@ FAIL $*"; }

rel=$(uname -r)
major=${rel%%.*}
minor=${rel#*.}
minor=${minor%%[!0-9]*}
ver=$((major * 1000 + minor))

# 1. The packet suite
"$B/test_packets" >"$T/packets.out" 2>&1
rc=$?
cat "$T/packets.out"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$T/packets.out" | tail -n1)
if [ $rc = 0 ] && [ -n "$last" ]; then
	ok "packet suite: $last$(grep -E '^[0-9]+ skipped' "$T/packets.out" | sed 's/^/, /')"
else
	bad "packet suite: ${last:-no result line} (exit $rc)"
fi

# A network namespace of its own, for the server's end of the veth pair
# (busybox has no "ip netns": a process holds it).
unshare -n sleep 600 &
holder=$!
n=0
while [ "$(readlink /proc/$holder/ns/net 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ] ||
      [ -z "$(readlink /proc/$holder/ns/net 2>/dev/null)" ]; do
	n=$((n + 1)); [ $n -gt 100 ] && break; sleep 0.05
done
in_srv() { nsenter -t "$holder" -n "$@"; }

ip link set lo up
# (busybox's ip names the peer veth0 whatever it is told)
ip link add stgk0 type veth peer name stgk1 &&
	{ ip link show stgk1 >/dev/null 2>&1 || ip link set veth0 name stgk1; } &&
	ip link set stgk1 netns "$holder" &&
	ip addr add 10.77.0.1/24 dev stgk0 && ip link set stgk0 up &&
	in_srv ip link set lo up &&
	in_srv ip addr add 10.77.0.2/24 dev stgk1 && in_srv ip link set stgk1 up ||
	bad "set-up: veth pair"
nsenter -t "$holder" -n "$B/smtp_pair" server 10.77.0.2 25 &
server=$!
# the server listens once a plaintext session gets its greeting and reply
n=0
until "$B/smtp_pair" client 10.77.0.2 25 plain >/dev/null 2>&1; [ $? = 1 ]; do
	n=$((n + 1)); [ $n -gt 100 ] && { bad "set-up: the server does not answer"; break; }
	sleep 0.05
done

# counter NAME: its value in "stats --json"
counter() { "$G" stats --json | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# 2. Attach, a session of each kind, counters, detach, nothing left
attach_step() { # MODE: auto, tcx or clsact
	mode=$1 step="attach ($1)" why=
	if ! in_srv "$G" attach stgk1 --tc-mode "$mode" >"$T/attach.out" 2>&1; then
		bad "$step: $(tail -n1 "$T/attach.out")"
		return
	fi
	want=$mode
	[ "$mode" = auto ] && want=clsact # 6.6 and newer only: TCX
	st=$(in_srv "$G" status 2>&1)
	echo "$st" | grep -q "stgk1 ($want" || why="status does not say $want: $(echo "$st" | grep interfaces)"
	# the scanner the loader chose: bpf_loop where the kernel has it
	scan="tail calls"
	grep -q '^ok - packet (bpf_loop)' "$T/packets.out" && scan=bpf_loop
	echo "$st" | grep -q "^scanner: *$scan" || why="${why:-status does not say scanner $scan: $(echo "$st" | grep scanner)}"
	"$B/smtp_pair" client 10.77.0.2 25 plain >"$T/plain.out" 2>&1 ||
		why="${why:-plaintext MAIL: $(cat "$T/plain.out")}"
	"$B/smtp_pair" client 10.77.0.2 25 tls >"$T/tls.out" 2>&1 ||
		why="${why:-STARTTLS session: $(cat "$T/tls.out")}"
	r=$(counter plaintext_command) t=$(counter tls_upgrades)
	[ "$r" = 1 ] && [ "$t" = 1 ] ||
		why="${why:-counters: plaintext_command $r, tls_upgrades $t (want 1, 1)}"
	if ! in_srv "$G" detach >"$T/detach.out" 2>&1; then
		why="${why:-detach: $(tail -n1 "$T/detach.out")}"
	elif [ -e "$STARTTLS_GUARD_PIN_DIR" ]; then
		why="${why:-pins left in $STARTTLS_GUARD_PIN_DIR}"
	elif "$B/smtp_pair" client 10.77.0.2 25 plain >/dev/null 2>&1; [ $? != 1 ]; then
		why="${why:-after detach, plaintext MAIL is still not answered}"
	fi
	if [ -n "$why" ]; then bad "$step: $why"; else ok "$step: scanner $scan; reset, upgrade passed, counted, detached"; fi
}
if [ $ver -ge 6006 ]; then
	attach_step tcx
	attach_step clsact
else
	attach_step auto
fi

# 3. A verifier's refusal names the kernel and quotes the verifier
if ! grep -q '^ok - packet (bpf_loop)' "$T/packets.out"; then
	out=$(in_srv "$G" attach stgk1 --scanner loop 2>&1)
	rc=$?
	"$B/smtp_pair" client 10.77.0.2 25 plain >/dev/null 2>&1
	after=$? # 1: MAIL answered, nothing attached
	if [ $rc = 1 ] && echo "$out" | grep -q "on Linux $rel" &&
	   echo "$out" | grep -q "the end of the verifier's log" &&
	   echo "$out" | grep -q 'processed [0-9]* insns' && [ $after = 1 ] &&
	   [ ! -e "$STARTTLS_GUARD_PIN_DIR" ]; then
		ok "a refused load (--scanner loop) names the kernel and quotes the verifier's log"
	else
		bad "a refused load: exit $rc, then a plaintext MAIL: $after"
	fi
	echo "$out" | sed 's/^/    | /'
fi

echo "@@ end"
