#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# End-to-end tests: the guard attached to a veth between two network
# namespaces, a real Postfix offering STARTTLS on one side, real clients
# (swaks, Python's smtplib) on the other. Each test attaches, sends real
# mail, checks what the clients saw and what Postfix logged and delivered,
# and detaches. Prints "ok - e2e: NAME" / "FAIL - e2e: NAME" lines.
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=${G_BIN:-$here/../build/starttls-guard}
source "$here/lib/lab.sh"
source "$here/lib/harness.sh"

# --- tests -------------------------------------------------------------------

# Plaintext MAIL FROM is reset before Postfix reads it (cases 19, 39);
# a STARTTLS session through the same guard delivers.
t_inbound() { # ADDR
	local t=tok$RANDOM$RANDOM
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	expect 3 "smtplib plaintext (want a reset)" \
		lab_smtp_client --server "$1" --token "p$t" || return 1
	lab_log_has_mail_from "$([ "${1#*:}" != "$1" ] && echo "$LAB_CLI6" || echo "$LAB_CLI4")"
	[ $? = 1 ] || { echo "Postfix saw MAIL from the reset session"; lab_log; return 1; }
	lab_delivered "p$t" && { echo "plaintext message delivered"; return 1; }
	expect 0 "smtplib STARTTLS" \
		lab_smtp_client --server "$1" --starttls --token "s$t" || return 1
	lab_wait_delivered "s$t" || { echo "STARTTLS message not delivered"; return 1; }
	lab_swaks --to bob@example.org --server "$1" --tls \
		--header "Subject: w$t" >/dev/null || { echo "swaks --tls failed"; return 1; }
	lab_wait_delivered "w$t" || { echo "swaks message not delivered"; return 1; }
	local sw
	sw=$(lab_swaks --to bob@example.org --server "$1" --header "Subject: x$t" 2>&1)
	grep -qiE "reset by peer|closed connection unexpectedly" <<<"$sw" ||
		{ echo "swaks plaintext not reset:"; echo "$sw"; return 1; }
	lab_delivered "x$t" && { echo "swaks plaintext delivered"; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 2 ] ||
		{ echo "plaintext_command counter:"; guard_srv stats; return 1; }
	[ "$(counter "$LAB_SRV_NS" tls_upgrades)" = 2 ] ||
		{ echo "tls_upgrades counter:"; guard_srv stats; return 1; }
}

# Exempt and denied clients, edited live (case 18, 59).
t_hosts() {
	local t=tok$RANDOM$RANDOM
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	guard_srv allow add "$LAB_CLI4_ALT/32" || return 1
	guard_srv allow add "$LAB_CLI6_ALT" || return 1
	guard_srv allow list | grep -q "^$LAB_CLI4_ALT/32 *exempt" || { guard_srv allow list; return 1; }
	expect 0 "exempt IPv4 plaintext" lab_smtp_client --server "$LAB_SRV4" \
		--source "$LAB_CLI4_ALT" --token "e4$t" || return 1
	expect 0 "exempt IPv6 plaintext" lab_smtp_client --server "$LAB_SRV6" \
		--source "$LAB_CLI6_ALT" --token "e6$t" || return 1
	lab_wait_delivered "e6$t" || return 1
	expect 3 "other client still reset" lab_smtp_client --server "$LAB_SRV4" \
		--token "n$t" || return 1
	guard_srv allow del "$LAB_CLI4_ALT/32" || return 1
	guard_srv allow add "$LAB_CLI4_ALT/32" --deny || return 1
	local rc
	lab_smtp_client --server "$LAB_SRV4" --source "$LAB_CLI4_ALT" --token "d$t"
	rc=$?
	[ "$rc" = 4 ] || [ "$rc" = 3 ] || { echo "denied client got exit $rc"; return 1; }
	[ "$(counter "$LAB_SRV_NS" denied_connections)" -ge 1 ] || return 1
}

# Attached on the client's side (outbound): the same enforcement (case 29).
t_outbound() {
	local t=tok$RANDOM$RANDOM
	guard_cli attach "$LAB_CLI_IF" >/dev/null || return 1
	expect 3 "outbound plaintext" lab_smtp_client --server "$LAB_SRV4" \
		--token "p$t" || return 1
	lab_log_has_mail_from "$LAB_CLI4"
	[ $? = 1 ] || { echo "Postfix saw MAIL"; return 1; }
	expect 0 "outbound STARTTLS" lab_smtp_client --server "$LAB_SRV6" \
		--starttls --token "s$t" || return 1
	lab_wait_delivered "s$t" || return 1
}

# On loopback: a client and Postfix on the same host, the guard on lo
# (every packet passes egress, then ingress).
t_loopback() {
	local t=tok$RANDOM$RANDOM
	guard_srv attach lo >/dev/null || return 1
	expect 3 "plaintext over lo" lab_srv timeout 30 python3 "$LAB_LIB_DIR/smtp_client.py" \
		--server "$LAB_SRV4" --token "p$t" || return 1
	expect 0 "STARTTLS over lo" lab_srv timeout 30 python3 "$LAB_LIB_DIR/smtp_client.py" \
		--server "$LAB_SRV6" --starttls --token "s$t" || return 1
	lab_wait_delivered "s$t" || return 1
	[ "$(counter "$LAB_SRV_NS" spoofed_server_dropped)" = 0 ] ||
		{ echo "loopback server packets taken as forged"; return 1; }
}

# A server that answers the client's hello with one write larger than the
# guard scans in a packet (a big certificate chain): over loopback it is
# one packet; only its first byte matters, so it passes.
t_big_answer() {
	guard_srv attach lo --port 2525 >/dev/null || return 1
	expect 0 "a 20000-byte answer to the hello" lab_srv timeout 30 \
		python3 "$LAB_LIB_DIR/big_answer.py" --port 2525 --size 20000 || return 1
	[ "$(counter "$LAB_SRV_NS" tls_upgrades)" = 1 ] &&
	[ "$(counter "$LAB_SRV_NS" resets)" = 0 ] || { guard_srv stats; return 1; }
}

# On a router: a client two hops away, the client namespace forwarding
# for it, the guard on the router's client-facing interface, then on its
# server-facing one (both ends remote, neither side's packets local).
t_router() {
	local far=stg-far-$$ rc
	ip netns add "$far" || return 1
	_t_router "$far" "stgf$$" "stgr$$"
	rc=$?
	guard_cli detach >/dev/null 2>&1
	ip -n "$LAB_SRV_NS" route del 198.51.100.0/24 2>/dev/null
	ip netns del "$far"
	return $rc
}
_t_router() {
	local far=$1 fif=$2 rif=$3 t=tok$RANDOM$RANDOM iface n=0
	ip -n "$far" link add "$fif" type veth peer name "$rif" netns "$LAB_CLI_NS" &&
	ip -n "$far" link set lo up && ip -n "$far" link set "$fif" up &&
	ip -n "$far" addr add 198.51.100.2/24 dev "$fif" &&
	ip -n "$far" route add default via 198.51.100.1 &&
	ip -n "$LAB_CLI_NS" addr add 198.51.100.1/24 dev "$rif" &&
	ip -n "$LAB_CLI_NS" link set "$rif" up &&
	ip netns exec "$LAB_CLI_NS" sysctl -qw net.ipv4.ip_forward=1 &&
	ip -n "$LAB_SRV_NS" route add 198.51.100.0/24 via "$LAB_CLI4" || return 1
	poll 5 ip netns exec "$far" ping -q -c1 -W1 "$LAB_SRV4" >/dev/null ||
		{ echo "no route through the router"; return 1; }
	for iface in "$rif" "$LAB_CLI_IF"; do
		n=$((n + 1))
		guard_cli attach "$iface" >/dev/null || return 1
		expect 3 "plaintext via the router ($iface)" ip netns exec "$far" \
			timeout 30 python3 "$LAB_LIB_DIR/smtp_client.py" \
			--server "$LAB_SRV4" --token "p$n$t" || return 1
		expect 0 "STARTTLS via the router ($iface)" ip netns exec "$far" \
			timeout 30 python3 "$LAB_LIB_DIR/smtp_client.py" \
			--server "$LAB_SRV4" --starttls --token "s$n$t" || return 1
		lab_wait_delivered "s$n$t" || return 1
		lab_delivered "p$n$t" && { echo "plaintext delivered"; return 1; }
		[ "$(counter "$LAB_CLI_NS" tls_upgrades)" = 1 ] &&
		[ "$(counter "$LAB_CLI_NS" resets_by_reason.plaintext_command)" = 1 ] ||
			{ guard_cli stats; return 1; }
		guard_cli detach >/dev/null || return 1
	done
}

# The clsact path: same verdicts; our qdisc goes with us; a foreign
# filter on the same hook stays (cases 50, 51, 52).
t_clsact() {
	local t=tok$RANDOM$RANDOM
	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact | grep -q clsact || return 1
	ip netns exec "$LAB_SRV_NS" tc filter show dev "$LAB_SRV_IF" ingress | grep -q stg_ingress ||
		{ echo "no clsact ingress filter"; return 1; }
	ip netns exec "$LAB_SRV_NS" tc qdisc show dev "$LAB_SRV_IF" root | grep -q clsact &&
		{ echo "filter on the root qdisc"; return 1; }
	expect 3 "clsact plaintext" lab_smtp_client --server "$LAB_SRV4" --token "p$t" || return 1
	expect 0 "clsact STARTTLS" lab_smtp_client --server "$LAB_SRV4" --starttls --token "s$t" || return 1
	guard_srv detach >/dev/null || return 1
	nothing_left || return 1
	# A clsact that was there before us, with someone else's filter.
	ip netns exec "$LAB_SRV_NS" tc qdisc add dev "$LAB_SRV_IF" clsact || return 1
	ip netns exec "$LAB_SRV_NS" tc filter add dev "$LAB_SRV_IF" ingress prio 9 \
		u32 match u32 0 0 || return 1
	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact >/dev/null || return 1
	guard_srv detach >/dev/null || return 1
	ip netns exec "$LAB_SRV_NS" tc filter show dev "$LAB_SRV_IF" ingress | grep -q u32 ||
		{ echo "foreign filter removed"; return 1; }
	ip netns exec "$LAB_SRV_NS" tc qdisc del dev "$LAB_SRV_IF" clsact
}

# Case 53, 54: programs that run before the guard on its hooks. With TCX
# the guard attaches first of all (a program attached before it does not
# get ahead) and status names a TCX program put ahead later; with clsact,
# status names another filter at the guard's priority. Plaintext is still
# reset in both cases, and the other programs stay.
t_ahead() {
	local other=$STARTTLS_GUARD_PIN_DIR-other out
	# Another TCX program (a second guard, on another port) attached
	# before ours: ours still goes first.
	STARTTLS_GUARD_PIN_DIR=$other guard_srv attach "$LAB_SRV_IF" --port 2525 >/dev/null || return 1
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	out=$(guard_srv status) || return 1
	grep -q "^warning" <<<"$out" && { echo "$out"; return 1; }
	out=$(STARTTLS_GUARD_PIN_DIR=$other guard_srv status)
	grep -q "^warning: on $LAB_SRV_IF ingress, before the guard: TCX program id" <<<"$out" ||
		{ echo "the later-first program not named: $out"; return 1; }
	expect 3 "plaintext with two TCX programs" lab_smtp_client --server "$LAB_SRV4" || return 1
	guard_srv detach >/dev/null || return 1
	STARTTLS_GUARD_PIN_DIR=$other guard_srv status | grep -q "^warning" &&
		{ echo "warning after the other one left"; return 1; }
	STARTTLS_GUARD_PIN_DIR=$other guard_srv detach >/dev/null || return 1
	# clsact: a foreign classic-BPF filter at the guard's priority
	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact >/dev/null || return 1
	ip netns exec "$LAB_SRV_NS" tc filter add dev "$LAB_SRV_IF" ingress prio 1 \
		handle 7 bpf bytecode '1,6 0 0 4294967295,' || return 1
	guard_srv status | grep -q "^warning: on $LAB_SRV_IF ingress, before the guard: bpf filter (prio 1, handle 0x7)" ||
		{ guard_srv status; return 1; }
	guard_srv detach >/dev/null || return 1
	ip netns exec "$LAB_SRV_NS" tc filter show dev "$LAB_SRV_IF" ingress | grep -q "handle 0x7" ||
		{ echo "foreign filter removed"; return 1; }
	ip netns exec "$LAB_SRV_NS" tc qdisc del dev "$LAB_SRV_IF" clsact
}
_t_ahead() {
	t_ahead
	local rc=$?
	STARTTLS_GUARD_PIN_DIR=$STARTTLS_GUARD_PIN_DIR-other guard_srv detach >/dev/null 2>&1
	ip netns exec "$LAB_SRV_NS" tc qdisc del dev "$LAB_SRV_IF" clsact 2>/dev/null
	return $rc
}

# Case 55: re-running attach (an upgrade) swaps the program without a
# gap: plaintext probes every 50 ms through 100 attaches, half of them
# killed with SIGKILL at a random moment, are all reset; one program of
# ours per hook afterwards.
t_restarts() {
	local stop=$LAB_DIR/probe.stop out i pid n
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	rm -f "$stop"
	lab_cli timeout 600 python3 "$LAB_LIB_DIR/raw_client.py" probe \
		"$LAB_SRV4" "$stop" >"$LAB_DIR/probe.out" 2>&1 &
	pid=$!
	for i in $(seq 1 100); do
		if [ $((i % 2)) = 0 ]; then
			guard_srv attach "$LAB_SRV_IF" >/dev/null ||
				{ touch "$stop"; wait $pid; echo "attach $i failed"; return 1; }
		else
			nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" attach \
				"$LAB_SRV_IF" >/dev/null 2>&1 &
			sleep "0.$((RANDOM % 9 + 1))"
			kill -9 $! 2>/dev/null
			wait $! 2>/dev/null
		fi
	done
	touch "$stop"
	wait $pid
	out=$(cat "$LAB_DIR/probe.out")
	[ "${out#reset }" != "$out" ] && [ "$(awk '{print $4}' <<<"$out")" = 0 ] &&
		[ "$(awk '{print $2}' <<<"$out")" -gt 100 ] ||
		{ echo "probes: $out"; return 1; }
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	# the programs of killed or replaced attaches are gone: two entry
	# programs use this guard's maps (other guards on the machine aside)
	n=$(bpftool map show pinned "$STARTTLS_GUARD_PIN_DIR/settings" | awk -F: 'NR == 1 { print $1 }')
	n=$(bpftool prog show -j | python3 -c 'import json, sys
print(sum(p.get("name") in ("stg_ingress", "stg_egress") and int(sys.argv[1]) in p.get("map_ids", [])
          for p in json.load(sys.stdin)))' "$n")
	[ "$n" = 2 ] || { echo "$n entry programs loaded"; bpftool prog show | grep stg_; return 1; }
	guard_srv status | grep -q "^warning" && { guard_srv status; return 1; }
	return 0
}

# Case 56: a pinned map of another layout (another version's) is named in
# the error, nothing is attached, and detach clears the way.
t_mismatch() {
	local out
	mkdir -p "$STARTTLS_GUARD_PIN_DIR" &&
		bpftool map create "$STARTTLS_GUARD_PIN_DIR/conns" type lru_hash key 4 \
			value 4 entries 16 name conns || return 1
	out=$(guard_srv attach "$LAB_SRV_IF" 2>&1) && { echo "attached: $out"; return 1; }
	grep -q "pinned map $STARTTLS_GUARD_PIN_DIR/conns does not match this version (key size 4, here 36)" <<<"$out" ||
		{ echo "$out"; return 1; }
	[ "$(wc -l <<<"$out")" = 1 ] || { echo "$out"; return 1; }
	nsenter --net="/run/netns/$LAB_SRV_NS" bpftool net show dev "$LAB_SRV_IF" | grep -q stg_ &&
		{ echo "attached after the error"; return 1; }
	guard_srv detach >/dev/null || return 1
	guard_srv attach "$LAB_SRV_IF" --max-connections 4096 >/dev/null || return 1
	guard_srv status | grep -q "room for 4096" || { guard_srv status; return 1; }
	guard_srv attach "$LAB_SRV_IF" >/dev/null || { echo "re-attach without the option"; return 1; }
	guard_srv status | grep -q "room for 4096" || { guard_srv status; return 1; }
	out=$(guard_srv attach "$LAB_SRV_IF" --max-connections 8192 2>&1) &&
		{ echo "resized a live table: $out"; return 1; }
	grep -q "the connection table holds 4096 entries: max-connections 8192 needs a detach first" <<<"$out" ||
		{ echo "$out"; return 1; }
}

# After detach plaintext works again, and nothing is left.
t_detach() {
	local t=tok$RANDOM$RANDOM
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	guard_cli attach "$LAB_CLI_IF" >/dev/null || return 1
	guard_srv status | grep -q "interfaces: .*$LAB_SRV_IF" || { guard_srv status; return 1; }
	guard_srv status | grep -qF "$LAB_CLI_IF (tcx, network namespace $LAB_CLI_NS)" ||
		{ echo "status hides the namespace"; guard_srv status; return 1; }
	guard_srv detach "$LAB_SRV_IF" >/dev/null || return 1
	# Plain detach, from yet another namespace (the host's), reaches it.
	"$G_BIN" detach >/dev/null || return 1
	nothing_left || return 1
	expect 0 "detach again with nothing attached" guard_srv detach || return 1
	expect 0 "plaintext after detach" lab_smtp_client --server "$LAB_SRV4" \
		--token "a$t" || return 1
	lab_wait_delivered "a$t" || return 1
}

# Re-attach with new options keeps live connections' state: a session
# held open after EHLO across the re-attach is still tracked (it is not
# picked up mid-stream afresh) and is judged by the new options.
t_reattach() {
	local t=tok$RANDOM$RANDOM line rc dir l
	guard_srv attach "$LAB_SRV_IF" --monitor >/dev/null || return 1
	expect 0 "monitor mode passes plaintext" lab_smtp_client --server "$LAB_SRV4" \
		--token "m$t" || return 1
	[ "$(counter "$LAB_SRV_NS" monitor_violations)" = 1 ] || return 1
	coproc HELD { lab_smtp_client --server "$LAB_SRV4" --hold --token "h$t"; }
	read -r -t 20 line <&"${HELD[0]}"
	[ "$line" = HELD ] || { echo "client did not reach EHLO: $line"; return 1; }
	# Adding an interface keeps the options not given.
	guard_srv attach lo --port 25 --port 587 >/dev/null || return 1
	guard_srv status | grep -q "mode: *monitor" ||
		{ echo "adding an interface left monitor mode"; guard_srv status; return 1; }
	guard_srv attach "$LAB_SRV_IF" --enforce >/dev/null || return 1
	guard_srv status | grep -q "mode: *enforce" || return 1
	# ... and every interface runs the program of the last attach.
	for dir in in eg; do
		[ "$(for l in "$STARTTLS_GUARD_PIN_DIR"/link_*_$dir; do
			bpftool link show pinned "$l" | grep -o 'prog [0-9]*'
		     done | sort -u | wc -l)" = 1 ] ||
			{ echo "interfaces run different programs ($dir)"; return 1; }
	done
	guard_srv status | grep -q "ports: *25 587" || { guard_srv status; return 1; }
	echo go >&"${HELD[1]}"
	read -r -t 20 line <&"${HELD[0]}"
	wait "$HELD_PID"
	rc=$?
	[ "$rc" = 3 ] || { echo "held session after re-attach: exit $rc ($line)"; return 1; }
	[ "$(counter "$LAB_SRV_NS" monitor_violations)" = 1 ] || { echo "counters lost on re-attach"; return 1; }
	[ "$(counter "$LAB_SRV_NS" pickup_plaintext)" = 0 ] ||
		{ echo "the held session's state was lost"; guard_srv stats; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 1 ] || return 1
}

# Case 28: health checks (connect, EHLO, then QUIT, an abrupt close or an
# RST) leave the connection table at its baseline.
t_healthcheck() {
	local n=60 out
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	out=$(lab_cli timeout 120 python3 "$LAB_LIB_DIR/raw_client.py" \
		healthcheck "$LAB_SRV4" $n) || { echo "$out"; return 1; }
	sleep 1 # the last ACKs
	guard_srv status | grep -q "connections: *0 tracked" ||
		{ echo "entries left:"; guard_srv status; return 1; }
	[ "$(counter "$LAB_SRV_NS" connections_closed)" = $n ] ||
		{ guard_srv stats; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets)" = 0 ] || { guard_srv stats; return 1; }
}

# Case 27: data on the SYN (TCP Fast Open, taken by Postfix's listener
# without a cookie) is judged: MAIL there is reset before Postfix reads
# it; EHLO there, then STARTTLS, delivers.
t_tfo() {
	local t=tok$RANDOM$RANDOM out rc
	lab_cli sysctl -qw net.ipv4.tcp_fastopen=5 &&
		lab_srv sysctl -qw net.ipv4.tcp_fastopen=1539 || return 1
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	out=$(lab_cli timeout 30 python3 "$LAB_LIB_DIR/raw_client.py" tfo \
		"$LAB_SRV4" 'EHLO x\r\nMAIL FROM:<alice@example.org>\r\n')
	rc=$?
	[ $rc = 3 ] || { echo "MAIL on a SYN: exit $rc, want a reset: $out"; return 1; }
	sleep 1
	! lab_log | grep -F "[$LAB_CLI4]" ||
		{ echo "Postfix saw the connection of the reset SYN"; return 1; }
	[ "$(counter "$LAB_SRV_NS" syn_payloads_judged)" = 1 ] || { guard_srv stats; return 1; }
	out=$(lab_cli timeout 30 python3 "$LAB_LIB_DIR/raw_client.py" tfo \
		"$LAB_SRV4" "EHLO $t\\r\\n" --starttls) ||
		{ echo "EHLO on a SYN, STARTTLS: $out"; return 1; }
	lab_wait_delivered "$t" || { echo "not delivered"; return 1; }
	[ "$(counter "$LAB_SRV_NS" syn_payloads_judged)" = 2 ] || { guard_srv stats; return 1; }
	[ "$(counter "$LAB_SRV_NS" tls_upgrades)" = 1 ] || { guard_srv stats; return 1; }
}
_t_tfo() {
	t_tfo
	local rc=$?
	lab_cli sysctl -qw net.ipv4.tcp_fastopen=1
	lab_srv sysctl -qw net.ipv4.tcp_fastopen=1
	return $rc
}

raw() { lab_cli timeout 60 python3 "$LAB_LIB_DIR/raw_client.py" "$@"; }

# Big packets (cases 31, 34, 36, 37): a 64 KiB pipelined burst in one
# write reaches the server's ingress as one GSO packet (veth keeps it
# whole), or, with the client's TSO off and GRO on the server's veth, as
# GRO super-packets. Every line in it is judged: all the EHLOs pass, a
# MAIL inside resets the whole packet with an RST that Postfix takes at
# once. Chained scanning (kernels without bpf_loop) fails closed on
# packets larger than it can read.
t_big() {
	local out rc seen
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	# Kernels before 5.17 have the chained scanner only: the last part.
	guard_srv status | grep -q "scanner: *bpf_loop" || { _t_big_chain; return; }
	out=$(raw burst "$LAB_SRV4" 65536) || { echo "GSO burst: $out"; guard_srv stats | grep -v " 0$"; return 1; }
	out=$(raw burst "$LAB_SRV4" 65536 --mail-inside)
	rc=$?
	[ $rc = 3 ] || { echo "MAIL inside a GSO burst: exit $rc: $out"; return 1; }
	lab_log_wait_disconnect "$LAB_CLI4" ||
		{ echo "Postfix did not take the RST"; lab_log; return 1; }
	lab_log_has_mail_from "$LAB_CLI4"
	[ $? = 1 ] || { echo "Postfix saw MAIL"; lab_log; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 2 ] ||
		{ guard_srv stats; return 1; }

	# GRO: wire-sized segments merged at the server's veth.
	lab_cli ethtool -K "$LAB_CLI_IF" tso off gso off >/dev/null &&
		lab_srv ethtool -K "$LAB_SRV_IF" gro on >/dev/null || return 1
	lab_srv timeout 20 tcpdump -i "$LAB_SRV_IF" -nn -q -c 200 \
		"tcp dst port 25 and greater 3000" >"$LAB_DIR/gro" 2>/dev/null &
	sleep 1
	out=$(raw burst "$LAB_SRV4" 65536) || { echo "GRO burst: $out"; guard_srv stats | grep -v " 0$"; return 1; }
	wait
	seen=$(grep -c "tcp [0-9]" "$LAB_DIR/gro")
	[ "$seen" -gt 0 ] || { echo "no GRO packet larger than 3000 bytes seen"; return 1; }
	out=$(raw burst "$LAB_SRV4" 65536 --mail-inside)
	[ $? = 3 ] || { echo "MAIL inside a GRO burst: $out"; return 1; }
	lab_cli ethtool -K "$LAB_CLI_IF" tso on gso on >/dev/null
	lab_srv ethtool -K "$LAB_SRV_IF" gro off >/dev/null
	_t_big_chain
}
# Chained scanning: a large packet is reset, not passed unread.
_t_big_chain() {
	local out
	guard_srv attach "$LAB_SRV_IF" --scanner chain >/dev/null || return 1
	guard_srv status | grep -q "scanner: *tail calls" || { guard_srv status; return 1; }
	out=$(raw burst "$LAB_SRV4" 65536)
	[ $? = 3 ] || { echo "chained scanning passed a 64 KiB packet: $out"; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.uninspectable)" = 1 ] ||
		{ guard_srv stats; return 1; }
}
_t_big() {
	t_big
	local rc=$?
	lab_cli ethtool -K "$LAB_CLI_IF" tso on gso on >/dev/null 2>&1
	lab_srv ethtool -K "$LAB_SRV_IF" gro off >/dev/null 2>&1
	return $rc
}

# Case 31: payload in page fragments (written with sendfile) gets the
# same verdicts.
t_sendfile() {
	local out
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	out=$(raw sendfile "$LAB_SRV4" 'EHLO x\r\nNOOP\r\n') ||
		{ echo "EHLO, NOOP with sendfile: $out"; return 1; }
	out=$(raw sendfile "$LAB_SRV4" 'EHLO x\r\nMAIL FROM:<alice@example.org>\r\n')
	[ $? = 3 ] || { echo "MAIL with sendfile not reset: $out"; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 1 ] ||
		{ guard_srv stats; return 1; }
}

# Policy auth-only: plaintext mail delivers (DATA and BDAT, with an AUTH
# line inside the message), AUTH before TLS is reset before Postfix reads
# it; the policy per port and per host.
t_auth_only() {
	local t=tok$RANDOM$RANDOM out
	guard_srv attach "$LAB_SRV_IF" --port 25:auth-only >/dev/null || return 1
	guard_srv status | grep -q "ports: *25 (auth-only)" || { guard_srv status; return 1; }
	expect 0 "smtplib plaintext under auth-only" \
		lab_smtp_client --server "$LAB_SRV4" --token "p$t" || return 1
	lab_wait_delivered "p$t" || { echo "plaintext message not delivered"; return 1; }
	out=$(raw bdat "$LAB_SRV4" "b$t") || { echo "BDAT: $out"; return 1; }
	lab_wait_delivered "b$t" || { echo "BDAT message not delivered"; return 1; }
	lab_log_mark
	out=$(raw auth "$LAB_SRV4")
	[ $? = 3 ] || { echo "AUTH before TLS not reset: $out"; return 1; }
	lab_log_wait_disconnect "$LAB_CLI4" || { lab_log; return 1; }
	! _lab_smtpd_lines "$LAB_CLI4" | grep -q "auth=" ||
		{ echo "Postfix read the AUTH:"; lab_log; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 1 ] ||
		{ guard_srv stats; return 1; }
	# back to encrypt for the port (given without a policy of its own);
	# one host auth-only
	guard_srv attach "$LAB_SRV_IF" --port 25 >/dev/null || return 1
	expect 3 "plaintext under encrypt" \
		lab_smtp_client --server "$LAB_SRV4" --token "e$t" || return 1
	guard_srv allow add "$LAB_CLI4" --auth-only >/dev/null || return 1
	expect 0 "plaintext from an auth-only host" \
		lab_smtp_client --server "$LAB_SRV4" --token "h$t" || return 1
	lab_wait_delivered "h$t" || { echo "not delivered"; return 1; }
	# --policy holds for the ports given later without their own
	guard_srv attach "$LAB_SRV_IF" --policy auth-only >/dev/null &&
		guard_srv attach "$LAB_SRV_IF" --port 25 --port 2525:encrypt >/dev/null || return 1
	guard_srv status | grep -q "ports: *25 (auth-only) 2525$" || { guard_srv status; return 1; }
}

# Case 45, on a kernel without VLAN devices: frames with an 802.1Q tag
# (moved into skb metadata by the receiving stack before TC) written on
# the client's veth. A MAIL in one is reset (picked up, judged) and the
# RST goes back with the tag.
t_vlan_frames() {
	local mac out
	mac=$(lab_srv cat "/sys/class/net/$LAB_SRV_IF/address") || return 1
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	lab_cli timeout 10 tcpdump -i "$LAB_CLI_IF" -e -nn -c 1 \
		"vlan 100 and tcp[tcpflags] & tcp-rst != 0" >"$LAB_DIR/vlan" 2>/dev/null &
	sleep 1
	raw vlanframe "$LAB_CLI_IF" "$mac" "$LAB_CLI4" "$LAB_SRV4" 100 \
		'MAIL FROM:<alice@example.org>\r\n' >/dev/null || return 1
	wait
	out=$(cat "$LAB_DIR/vlan")
	grep -q "vlan 100.*$LAB_SRV4.25 > $LAB_CLI4.40025: Flags \[R.\], seq 2000, ack 1000" <<<"$out" ||
		{ echo "no RST with the tag back: $out"; return 1; }
	[ "$(counter "$LAB_SRV_NS" resets_by_reason.plaintext_command)" = 1 ] &&
	[ "$(counter "$LAB_SRV_NS" pickup_plaintext)" = 1 ] ||
		{ guard_srv stats | grep -v " 0$"; return 1; }
}

# Network namespaces: a clsact attachment is detached from inside its
# namespace even when detach runs elsewhere; 'ip netns exec', whose private
# /sys would hold the pins only while it runs, is refused.
t_netns() {
	local out
	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact >/dev/null || return 1
	out=$("$G_BIN" detach 2>&1) || { echo "$out"; return 1; }
	grep -q "detached from $LAB_SRV_IF" <<<"$out" || { echo "$out"; return 1; }
	nothing_left || return 1
	lab_srv "$G_BIN" detach 2>/dev/null &&
		{ echo "detach under ip netns exec exited 0"; return 1; }
	out=$(lab_srv "$G_BIN" attach "$LAB_SRV_IF" 2>&1) &&
		{ echo "attach under ip netns exec succeeded"; return 1; }
	[ "$(wc -l <<<"$out")" = 1 ] && grep -q nsenter <<<"$out" ||
		{ echo "$out"; return 1; }
	nothing_left
}

# A clsact attachment in a namespace detach cannot find (bound to a file
# outside /run/netns, no process in it) is only forgotten with --force,
# and the copy left running there passes all traffic.
t_forgotten() {
	local nsf=/tmp/stg-orphan-$$ rc
	touch "$nsf" && unshare --net="$nsf" ip link set lo up || return 1
	_t_forgotten "$nsf"
	rc=$?
	[ -n "${SRV_PID:-}" ] && kill "$SRV_PID" 2>/dev/null
	umount "$nsf" && rm -f "$nsf"
	return $rc
}
_t_forgotten() {
	local nsf=$1 out
	in_ns() { nsenter --net="$nsf" "$@"; }
	in_ns "$G_BIN" attach lo --tc-mode clsact >/dev/null || return 1
	out=$("$G_BIN" detach 2>&1) && { echo "detach without --force: $out"; return 1; }
	grep -q -- "--force" <<<"$out" || { echo "$out"; return 1; }
	"$G_BIN" detach --force | grep -q "forgot lo" || return 1
	[ -e "$STARTTLS_GUARD_PIN_DIR" ] && { echo "pins left"; return 1; }
	in_ns tc filter show dev lo ingress | grep -q stg_ingress ||
		{ echo "the copy is gone: nothing to test"; return 1; }
	# nsenter itself (not a function, a subshell) so that $! is the server
	nsenter --net="$nsf" python3 -W ignore -m smtpd -n -c DebuggingServer \
		127.0.0.1:25 >/dev/null 2>&1 &
	SRV_PID=$!
	poll 5 in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/25' || return 1
	expect 0 "plaintext through the forgotten copy" in_ns timeout 30 \
		python3 "$LAB_LIB_DIR/smtp_client.py" --server 127.0.0.1 --token f$$
}

# Attachments that change under the guard: a mode switch that fails keeps
# the old attachment; a deleted interface is forgotten by the next attach;
# a second guard does not take over the first one's clsact filters; detach
# removes only what it pinned.
t_changes() {
	local out p2=$STARTTLS_GUARD_PIN_DIR-2
	lab_srv ip link add stgy0 type veth peer name stgy1 &&
	lab_srv ip link set stgy0 up || return 1
	guard_srv attach "$LAB_SRV_IF" stgy0 --tc-mode tcx >/dev/null || return 1
	lab_srv tc qdisc add dev "$LAB_SRV_IF" ingress || return 1
	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact 2>/dev/null &&
		{ echo "a switch to clsact over an ingress qdisc succeeded"; return 1; }
	lab_srv tc qdisc del dev "$LAB_SRV_IF" ingress
	expect 3 "plaintext after a failed switch" lab_smtp_client \
		--server "$LAB_SRV4" --token "c$RANDOM" || return 1
	lab_srv ip link del stgy0
	out=$(guard_srv attach "$LAB_SRV_IF" 2>&1) || { echo "$out"; return 1; }
	grep -q "forgot stgy0" <<<"$out" || { echo "$out"; return 1; }
	guard_srv status | grep -q stgy0 && { echo "a deleted interface listed"; return 1; }
	guard_srv detach >/dev/null || return 1

	guard_srv attach "$LAB_SRV_IF" --tc-mode clsact >/dev/null || return 1
	STARTTLS_GUARD_PIN_DIR=$p2 guard_srv attach "$LAB_SRV_IF" \
		--tc-mode clsact 2>/dev/null &&
		{ echo "a second guard took the first one's filter"; return 1; }
	[ -e "$p2" ] && { echo "$p2 left behind"; return 1; }
	expect 3 "plaintext with the first guard" lab_smtp_client \
		--server "$LAB_SRV4" --token "d$RANDOM" || return 1
	bpftool map create "$STARTTLS_GUARD_PIN_DIR/notours" type array key 4 \
		value 4 entries 1 name notours || return 1
	guard_srv detach >/dev/null 2>&1
	[ -e "$STARTTLS_GUARD_PIN_DIR/notours" ] || { echo "detach removed a pin not its own"; return 1; }
	[ "$(ls "$STARTTLS_GUARD_PIN_DIR")" = notours ] || { ls "$STARTTLS_GUARD_PIN_DIR"; return 1; }
	rm "$STARTTLS_GUARD_PIN_DIR/notours" && rmdir "$STARTTLS_GUARD_PIN_DIR"
	nothing_left
}

# Errors: one line, non-zero exit, nothing half-attached.
t_errors() {
	local out rc
	out=$(guard_srv attach nosuchif0 2>&1) && return 1
	[ "$(wc -l <<<"$out")" = 1 ] || { echo "$out"; return 1; }
	grep -q "no such interface: nosuchif0" <<<"$out" || { echo "$out"; return 1; }
	guard_srv attach "$LAB_SRV_IF" nosuchif0 2>/dev/null && return 1
	nothing_left || return 1
	guard_srv attach "$LAB_SRV_IF" --port 0 2>/dev/null && return 1
	guard_srv attach "$LAB_SRV_IF" --default maybe 2>/dev/null && return 1
	nothing_left || return 1
	expect 2 "an SMTP command as upgrade verb" guard_srv attach "$LAB_SRV_IF" \
		--upgrade-verb MAIL 2>/dev/null || return 1
	expect 1 "a port both STARTTLS and implicit TLS" guard_srv attach \
		"$LAB_SRV_IF" --port 465 --implicit-tls-port 465 2>/dev/null || return 1
	out=$(STARTTLS_GUARD_PIN_DIR=$LAB_DIR/pins guard_srv attach "$LAB_SRV_IF" 2>&1) &&
		{ echo "pinned outside bpffs"; return 1; }
	[ "$(wc -l <<<"$out")" = 1 ] && grep -q "not on a bpf filesystem" <<<"$out" ||
		{ echo "$out"; return 1; }
	nothing_left || return 1
	# Case 48: a layer-3 device (tun: no Ethernet header) is refused.
	lab_srv ip tuntap add dev stgtun0 mode tun || return 1
	out=$(guard_srv attach stgtun0 2>&1)
	rc=$?
	lab_srv ip tuntap del dev stgtun0 mode tun
	[ $rc = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] &&
		grep -q "stgtun0 is not an Ethernet device" <<<"$out" ||
		{ echo "tun: exit $rc: $out"; return 1; }
	nothing_left || return 1
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	# An attach that fails on one interface (an old 'ingress' qdisc is
	# in clsact's way) changes nothing: the guard stays enforcing.
	lab_srv ip link add stgx0 type veth peer name stgx1 || return 1
	lab_srv tc qdisc add dev stgx0 ingress || return 1
	out=$(guard_srv attach "$LAB_SRV_IF" stgx0 --monitor --tc-mode clsact 2>&1) &&
		{ echo "attach over an ingress qdisc succeeded"; return 1; }
	[ "$(grep -c starttls-guard: <<<"$out")" = 1 ] || { echo "$out"; return 1; }
	lab_srv ip link del stgx0
	guard_srv status | grep -q "mode: *enforce" ||
		{ echo "failed attach left monitor mode"; guard_srv status; return 1; }
	guard_srv status | grep -q "stgx0" && { echo "stgx0 half-attached"; return 1; }
	expect 3 "still enforced" lab_smtp_client --server "$LAB_SRV4" --token "f$RANDOM" || return 1
	for bad in 192.0.2.10/33 300.1.1.1/8 192.0.2.1/24 junk; do
		guard_srv allow add "$bad" 2>/dev/null && { echo "accepted $bad"; return 1; }
	done
	guard_srv allow list | grep -q . && { echo "host map not empty"; return 1; }
	guard_srv detach >/dev/null || return 1
	out=$(guard_srv stats 2>&1) && return 1
	grep -q "not attached" <<<"$out" || { echo "$out"; return 1; }
	"$G_BIN" --help | grep -q "attach IFACE" || return 1
}

lab_up || { echo "FAIL - e2e: lab setup"; echo "0 passed, 1 failed"; exit 1; }
run_test "IPv4: plaintext MAIL reset, STARTTLS delivered (swaks, smtplib; cases 19, 39)" t_inbound "$LAB_SRV4"
run_test "IPv6: plaintext MAIL reset, STARTTLS delivered (swaks, smtplib; cases 19, 39)" t_inbound "$LAB_SRV6"
run_test "exempt client delivers in plaintext, denied client cannot connect (cases 18, 59)" t_hosts
run_test "outbound: attached on the client's side (case 29)" t_outbound
run_test "loopback: client and server on the same host" t_loopback
run_test "router: a forwarded connection, guarded on either side" t_router
run_test "a hello answered in one packet larger than a scan" t_big_answer
run_test "clsact mode; foreign filters kept (cases 50, 51, 52)" t_clsact
run_test "programs ahead of the guard: TCX first, status warns (cases 53, 54)" _t_ahead
run_test "re-attach under plaintext probes: no gap, SIGKILL too (case 55)" t_restarts
run_test "a pinned map of another layout is named (case 56)" t_mismatch
run_test "detach: plaintext works again, nothing left" t_detach
run_test "attach again updates options, keeps state" t_reattach
run_test "health checks leave the table at its baseline (case 28)" t_healthcheck
run_test "data on the SYN (TCP Fast Open) is judged (case 27)" _t_tfo
run_test "big packets: GSO and GRO, every line judged (cases 34, 36, 37)" _t_big
run_test "payload in page fragments: sendfile (case 31)" t_sendfile
run_test "policy auth-only: per port and per host, DATA and BDAT" t_auth_only
run_test "VLAN-tagged frames judged, RST tagged back (case 45)" t_vlan_frames
run_test "network namespaces: detach reaches clsact, ip netns exec refused" t_netns
run_test "detach --force: a copy it cannot reach passes traffic" t_forgotten
run_test "attachments that change under the guard" t_changes
run_test "CLI errors leave nothing half-attached (cases 48, 49, 59)" t_errors
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
