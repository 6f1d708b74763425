#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# tests/replay.sh - "starttls-guard replay" on the captures of
# tests/captures/: each NAME[.VARIANT].expected holds, on its first line,
# the replay's arguments ("# replay ARGS... FILE") and then its output.
# --bless writes the outputs instead (read them before committing).
# Also: replay's errors, and that it touches nothing. Needs root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
caps=$here/captures
G_BIN=${G_BIN:-$here/../build/starttls-guard}
# Where a guard would pin: replay must never create it.
export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/starttls-guard-replay-$$
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

t() { # NAME CMD...
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok - replay: $name"
	else
		failed=$((failed + 1))
		echo "FAIL - replay: $name"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
}

# The arguments of an expected file, from its first line.
args_of() { sed -n '1s/^# replay //p' "$1"; }

expected() { # FILE.expected
	local want=$1 args got
	args=$(args_of "$want")
	[ -n "$args" ] || { echo "$want: no '# replay' line"; return 1; }
	# shellcheck disable=SC2086 # the arguments are words
	got=$(cd "$caps" && "$G_BIN" replay $args) || { echo "replay $args failed"; return 1; }
	if ! diff -u <(tail -n +2 "$want") <(printf '%s\n' "$got"); then
		echo "replay $args: output differs from $(basename "$want")"
		return 1
	fi
}

if [ "${1:-}" = --bless ]; then
	for want in "$caps"/*.expected; do
		args=$(args_of "$want")
		# shellcheck disable=SC2086
		{ head -n1 "$want"; (cd "$caps" && "$G_BIN" replay $args); } >"$tmp/out" &&
			mv "$tmp/out" "$want" && echo "wrote $want"
	done
	exit 0
fi

for want in "$caps"/*.expected; do
	t "$(basename "$want" .expected): decisions as expected" expected "$want"
done

# The decisions alone, from --json, must be the text output's.
json_same() {
	local a b
	a=$(cd "$caps" && "$G_BIN" replay --json sessions.pcapng |
		python3 -c 'import json,sys
for c in json.load(sys.stdin)["connections"]:
    print(c["client_port"], c["decision"] +
          (" (%s)" % c["verb"] if "verb" in c else "") +
          (" at %s" % c["time"] if "time" in c else ""))') || return 1
	[ -n "$a" ] && [ "$(printf '%s\n' "$a" | wc -l)" = 4 ] || { echo "json: $a"; return 1; }
	b=$(cd "$caps" && "$G_BIN" replay sessions.pcapng | sed -n '/^$/q;p' |
		awk '{ split($1, a, ":"); port = a[length(a)]; sub(/^.*  /, ""); print port, $0 }')
	[ "$a" = "$b" ] || { echo "json: $a"; echo "text: $b"; return 1; }
}
t "--json carries the same decisions" json_same

# A file of the daemon's format gives the options and the hosts.
config_file() {
	printf 'mode = monitor\nexempt = 2001:db8::10\n' >"$tmp/c.conf"
	out=$(cd "$caps" && "$G_BIN" replay --config "$tmp/c.conf" sessions.pcapng) || return 1
	printf '%s\n' "$out" | grep -q '^192.0.2.10:.*monitor: plaintext_command (MAIL) at ' &&
	printf '%s\n' "$out" | grep -c '^\[2001:db8::10\]:.*  exempt at ' | grep -qx 2 ||
		{ printf '%s\n' "$out"; return 1; }
}
t "--config: the file's mode and hosts" config_file

# Hosts from the command line, over the file's: the file exempts the IPv6
# client, --deny refuses it; --auth-only-hosts lets the IPv4 client's
# plaintext session (no AUTH in it) pass where the default resets it.
host_options() {
	printf 'exempt = 2001:db8::10\n' >"$tmp/h.conf"
	out=$(cd "$caps" && "$G_BIN" replay --config "$tmp/h.conf" --deny 2001:db8::10 \
		--auth-only-hosts 192.0.2.10 sessions.pcapng) || return 1
	[ "$(printf '%s\n' "$out" | grep -c '^\[2001:db8::10\]:.*  reset: denied_host at ')" = 2 ] &&
	printf '%s\n' "$out" | grep -q '^192.0.2.10:.*  plaintext-quit$' &&
	grep -q '^192.0.2.10:.*  reset: plaintext_command' "$caps/sessions.expected" ||
		{ printf '%s\n' "$out"; return 1; }
}
t "--deny and --auth-only-hosts, over the file's hosts" host_options

# A capture cut by its snap length is replayed with a warning, and the
# connections whose packets were cut say so.
cut_short() {
	python3 - "$caps/injection.pcap" "$tmp/cut.pcap" <<'PY' || return 1
import struct, sys
raw = open(sys.argv[1], "rb").read()
out = bytearray(raw[:16] + struct.pack("<I", 60) + raw[20:24])
off = 24
while off < len(raw):
    sec, usec, cap, orig = struct.unpack("<IIII", raw[off:off + 16])
    keep = min(cap, 60)
    out += struct.pack("<IIII", sec, usec, keep, orig) + raw[off + 16:off + 16 + keep]
    off += 16 + cap
open(sys.argv[2], "wb").write(out)
PY
	out=$("$G_BIN" replay "$tmp/cut.pcap" 2>&1) || return 1
	printf '%s\n' "$out" | grep -q '(packets cut short by the capture)$' &&
	printf '%s\n' "$out" | grep -q '^starttls-guard: warning: .* cut short by the capture.s snap length' ||
		{ printf '%s\n' "$out"; return 1; }
}
t "a capture cut by its snap length: warned, connections marked" cut_short

# A tuple used again (after a new SYN) is a connection of its own: the
# plaintext session of totlen0.pcap moved onto the STARTTLS session's
# client port gives two lines on one tuple, tls then reset.
reused_tuple() {
	python3 - "$caps/totlen0.pcap" "$tmp/reused.pcap" <<'PY' || return 1
import struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
ports, off = [], 24
while off < len(raw):
    cap, = struct.unpack("<I", raw[off + 8:off + 12])
    p = off + 16
    if raw[p + 12:p + 14] == b"\x08\x00":
        tcp = p + 14 + (raw[p + 14] & 15) * 4
        sport, dport = struct.unpack(">HH", raw[tcp:tcp + 4])
        if dport == 25 and sport not in ports:
            ports.append(sport)
        if len(ports) > 1:
            if sport == ports[1]:
                raw[tcp:tcp + 2] = struct.pack(">H", ports[0])
            if dport == ports[1]:
                raw[tcp + 2:tcp + 4] = struct.pack(">H", ports[0])
    off = p + cap
open(sys.argv[2], "wb").write(raw)
PY
	out=$("$G_BIN" replay "$tmp/reused.pcap") || return 1
	printf '%s\n' "$out" | grep '^192.0.2.10:' | awk '{print $1, $NF}' >"$tmp/lines"
	[ "$(grep -c . "$tmp/lines")" = 2 ] &&
		[ "$(cut -d' ' -f1 "$tmp/lines" | sort -u | wc -l)" = 1 ] &&
		printf '%s\n' "$out" | grep '^192.0.2.10:' | head -n1 | grep -q '  tls at ' &&
		printf '%s\n' "$out" | grep '^192.0.2.10:' | tail -n1 | grep -q 'reset: plaintext_command (MAIL)' ||
		{ printf '%s\n' "$out"; return 1; }
}
t "a tuple used again is a connection of its own" reused_tuple

# Which way packets went: without --local or a cooked capture, every
# connection is inbound, and replay says so when --direction matters.
direction_note() {
	out=$(cd "$caps" && "$G_BIN" replay --direction inbound outbound-eth.pcap 2>&1) || return 1
	printf '%s\n' "$out" | grep -q 'note: --direction: .* taken as inbound' &&
	printf '%s\n' "$out" | grep -q '^192.0.2.25:.*reset: plaintext_command' ||
		{ printf '%s\n' "$out"; return 1; }
	out=$(cd "$caps" && "$G_BIN" replay --direction inbound outbound.pcap 2>&1) || return 1
	! printf '%s\n' "$out" | grep -q 'note: --direction' || { printf '%s\n' "$out"; return 1; }
}
t "--direction without --local: every connection inbound, and said" direction_note

# A capture whose writer was killed mid-packet is replayed up to there;
# one with nothing on a guarded port says so.
partial_files() {
	head -c -20 "$caps/injection.pcap" >"$tmp/trunc.pcap"
	out=$("$G_BIN" replay "$tmp/trunc.pcap" 2>&1) || { echo "exit $?: $out"; return 1; }
	printf '%s\n' "$out" | grep -q 'warning: .*trunc.pcap: .*replayed up to there' &&
	printf '%s\n' "$out" | grep -q '^192.0.2.10:.*reset: starttls_injection' ||
		{ printf '%s\n' "$out"; return 1; }
	out=$("$G_BIN" replay --port 587 "$caps/injection.pcap" 2>&1) || return 1
	printf '%s\n' "$out" | grep -q 'note: no packet of the captures is on a guarded port' ||
		{ printf '%s\n' "$out"; return 1; }
}
t "a truncated capture replayed up to its end; no guarded port said" partial_files

# Errors: one line, exit 1 for what cannot be read, 2 for the command line.
errors() {
	local out rc
	out=$("$G_BIN" replay "$tmp/nonexistent.pcap" 2>&1); rc=$?
	[ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
		[ "$(grep -o nonexistent.pcap <<<"$out" | wc -l)" = 1 ] ||
		{ echo "missing file: rc $rc: $out"; return 1; }
	# a file that cannot be read is said before anything is replayed
	out=$("$G_BIN" replay "$caps/injection.pcap" "$tmp/nonexistent.pcap" 2>&1); rc=$?
	[ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "second file missing: rc $rc: $out"; return 1; }
	printf 'mode = sometimes\n' >"$tmp/bad.conf"
	out=$("$G_BIN" replay --config "$tmp/bad.conf" "$caps/injection.pcap" 2>&1); rc=$?
	[ $rc = 2 ] && [[ $out == *bad.conf:1:* ]] || { echo "bad config: rc $rc: $out"; return 1; }
	echo "not a capture" >"$tmp/text.pcap"
	out=$("$G_BIN" replay "$tmp/text.pcap" 2>&1); rc=$?
	[ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "text file: rc $rc: $out"; return 1; }
	# 802.11 (link type 105): not a link replay knows
	python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 105))' >"$tmp/wifi.pcap"
	out=$("$G_BIN" replay "$tmp/wifi.pcap" 2>&1); rc=$?
	[ $rc = 1 ] && [[ $out == *"link type"*"not supported"* ]] || { echo "802.11: rc $rc: $out"; return 1; }
	out=$("$G_BIN" replay 2>&1); rc=$?
	[ $rc = 2 ] && [[ $out == *"no capture file"* ]] || { echo "no file: rc $rc: $out"; return 1; }
	out=$("$G_BIN" replay --exempt 10.0.0.1/8 x.pcap 2>&1); rc=$?
	[ $rc = 2 ] && [[ $out == *"host bits"* ]] || { echo "bad CIDR: rc $rc: $out"; return 1; }
	out=$("$G_BIN" replay --bogus x.pcap 2>&1); rc=$?
	[ $rc = 2 ] || { echo "unknown option: rc $rc: $out"; return 1; }
}
t "errors: one line, exit 1 (files) or 2 (command line)" errors

# Nothing pinned, nothing attached: the pin directory is never made, and
# no interface of this namespace gains a qdisc or a program.
untouched() {
	local before after
	before=$(tc qdisc show; bpftool net show 2>/dev/null)
	(cd "$caps" && "$G_BIN" replay sessions.pcapng injection.pcap) >/dev/null || return 1
	after=$(tc qdisc show; bpftool net show 2>/dev/null)
	[ ! -e "$STARTTLS_GUARD_PIN_DIR" ] || { echo "pinned to $STARTTLS_GUARD_PIN_DIR"; return 1; }
	[ "$before" = "$after" ] || { echo "interfaces changed:"; diff <(echo "$before") <(echo "$after"); return 1; }
}
t "nothing pinned, nothing attached" untouched

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
