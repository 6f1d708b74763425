#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# tests/interop/interop.sh - the interoperability matrix: real SMTP
# servers x real SMTP clients, through the guard.
#
# One lane per server (Postfix, Exim, OpenSMTPD, aiosmtpd), each a client
# namespace and a server namespace joined by a veth pair, the lanes run
# side by side. In each lane, with the guard attached on the server's
# side and then on the client's, over IPv4 and IPv6, every client:
#   T  sends a message with STARTTLS: the server delivers it, over TLS;
#   P  sends one in plaintext: reset before any MAIL reaches the server
#      (its log), the reason counted (plaintext_command);
#   H  falls back to HELO when the server refuses EHLO (port 2525), then
#      sends in plaintext: judged as after EHLO (reset, counted);
#   E  sends in plaintext from an exempt address: delivered.
# A client that has no such mode ("openssl s_client -starttls" speaks
# only TLS) or does not fall back to HELO shows '-' there.
# With the guard on the server's side the client's interface is captured,
# and "starttls-guard replay" of the capture must decide every connection
# as the guard did live ("events --json").
#
# Prints the matrix and ends with "N passed, N failed" (one test per
# server x client cell, one per lane's replay). Needs root.
# INTEROP_ONLY=REGEX: only the servers whose name matches.
# --readme: write the matrix into tests/interop/README.md as well.
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=${G_BIN:-$here/../../build/starttls-guard}
export G_BIN
# shellcheck source=pkgs.sh
source "$here/pkgs.sh"
for f in "$here"/srv_*.sh "$here"/cli_*.sh "$here"/clients.sh; do
	# shellcheck disable=SC1090
	source "$f"
done

SERVERS="postfix exim opensmtpd aiosmtpd"
CLIENTS="swaks swaks_pipe swaks_auth openssl gnutls msmtp curl smtplib nodemailer postfix exim"
SRV4=192.0.2.25 SRV6=2001:db8::25 CLI4=192.0.2.10 CLI6=2001:db8::10
RUN=/tmp/stg-interop-$$
# The MTAs unpacked where their unprivileged processes can reach them
# (a clone may sit in a directory only root can enter).
export INTEROP_ROOT=$RUN/root
# Host names of the server, for the clients that need one (clients.sh):
# "ip netns exec" puts /etc/netns/NS/hosts over /etc/hosts.
export CLI_NAMES="$SRV4=mx4.interop.test $SRV6=mx6.interop.test"
mkdir -p "$RUN" && chmod 755 "$RUN"

readme=0
[ "${1:-}" = --readme ] && readme=1

# What each client can do: modes it has (tls, plain) and whether it falls
# back to HELO when EHLO is refused (tests/interop/clients.sh says why).
has_plain() { [ "$1" != openssl ]; }
helo_fallback() {
	case $1 in
	postfix|exim) return 0 ;; # tests/interop/cli_mta.sh
	*) cli_helo_fallback "$1" 2>/dev/null ;;
	esac
}

ns_c() { echo "sti-c-$1-$$"; }
ns_s() { echo "sti-s-$1-$$"; }

cleanup() {
	local s ns
	for s in $SERVERS; do
		for ns in "$(ns_c "$s")" "$(ns_s "$s")"; do
			[ -e "/run/netns/$ns" ] || continue
			ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
			ip netns del "$ns" 2>/dev/null
			rm -rf "/etc/netns/$ns"
		done
		for side in server client; do
			STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/stg-interop-$$-$s-$side \
				"$G_BIN" detach >/dev/null 2>&1
		done
	done
	rm -rf "$RUN"
}
trap cleanup EXIT

# --- one lane ---------------------------------------------------------------

# Every line a lane writes to its results file:
#   SERVER CLIENT SIDE FAMILY SCENARIO ok|fail|na [why]
lane() {
	local s=$1 i=$2 dir=$RUN/$1 res=$RUN/$1.results
	local cns sns cif sif side fam addr pin
	cns=$(ns_c "$s") sns=$(ns_s "$s") cif=ic$i-$$ sif=is$i-$$
	cif=${cif:0:15} sif=${sif:0:15}
	mkdir -p "$dir/srv" "$dir/cli" && chmod 755 "$dir" "$dir/srv" "$dir/cli"
	: >"$res"
	if ! { ip netns add "$cns" && ip netns add "$sns" &&
	       ip -n "$sns" link add "$sif" type veth peer name "$cif" netns "$cns" &&
	       ip -n "$sns" link set lo up && ip -n "$cns" link set lo up &&
	       ip -n "$sns" addr add $SRV4/24 dev "$sif" &&
	       ip -n "$sns" addr add $SRV6/64 dev "$sif" nodad &&
	       ip -n "$cns" addr add $CLI4/24 dev "$cif" &&
	       ip -n "$cns" addr add $CLI6/64 dev "$cif" nodad &&
	       ip -n "$sns" link set "$sif" up && ip -n "$cns" link set "$cif" up; }; then
		echo "$s - - - setup fail network" >>"$res"; return
	fi
	mkdir -p "/etc/netns/$cns" &&
		printf '127.0.0.1 localhost\n::1 localhost\n%s mx4.interop.test\n%s mx6.interop.test\n' \
			$SRV4 $SRV6 >"/etc/netns/$cns/hosts"
	if ! "srv_${s}_start" "$sns" "$dir/srv" 2>"$dir/start.err"; then
		echo "$s - - - setup fail $(tail -n1 "$dir/start.err")" >>"$res"; return
	fi
	# The sending MTAs run in the client namespace for the whole lane.
	cli_postfix_setup "$cns" "$dir/cli" 2>"$dir/mta.err" &&
		cli_exim_setup "$cns" "$dir/cli" 2>>"$dir/mta.err" ||
		{ echo "$s - - - setup fail $(tail -n1 "$dir/mta.err")" >>"$res"; return; }

	for side in server client; do
		pin=/sys/fs/bpf/stg-interop-$$-$s-$side
		local gns=$sns gif=$sif
		[ $side = client ] && gns=$cns gif=$cif
		if ! STARTTLS_GUARD_PIN_DIR=$pin nsenter --net="/run/netns/$gns" \
			"$G_BIN" attach "$gif" --port 25 --port 2525 >"$dir/attach.out" 2>&1; then
			echo "$s - $side - setup fail attach: $(tail -n1 "$dir/attach.out")" >>"$res"
			continue
		fi
		if [ $side = server ]; then
			STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" events --json >"$dir/events.json" 2>/dev/null &
			echo $! >"$dir/events.pid"
		fi
		for phase in guarded exempt; do
			[ $side = server ] && capture_start "$cns" "$cif" "$dir/$phase.pcap"
			if [ $phase = exempt ]; then
				STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" allow add $CLI4/32 >/dev/null &&
				STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" allow add $CLI6/128 >/dev/null ||
					echo "$s - $side - setup fail allow add" >>"$res"
			fi
			for fam in 4 6; do
				addr=$SRV4
				[ $fam = 6 ] && addr=$SRV6
				for c in $CLIENTS; do
					if [ $phase = guarded ]; then
						cell "$s" "$c" $side $fam T "$addr" "$pin"
						cell "$s" "$c" $side $fam P "$addr" "$pin"
						cell "$s" "$c" $side $fam H "$addr" "$pin"
					else
						cell "$s" "$c" $side $fam E "$addr" "$pin"
					fi
				done >>"$res"
			done
			[ $side = server ] && capture_stop
			if [ $phase = exempt ]; then
				STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" allow del $CLI4/32 >/dev/null
				STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" allow del $CLI6/128 >/dev/null
			fi
		done
		if [ $side = server ]; then
			kill "$(cat "$dir/events.pid")" 2>/dev/null
			wait "$(cat "$dir/events.pid")" 2>/dev/null
			replay_check "$s" "$dir" >>"$res"
		fi
		STARTTLS_GUARD_PIN_DIR=$pin "$G_BIN" detach >/dev/null 2>&1
	done
	cli_exim_teardown "$cns" "$dir/cli" 2>/dev/null
	cli_postfix_teardown "$cns" "$dir/cli" 2>/dev/null
	"srv_${s}_stop" "$sns" "$dir/srv" 2>/dev/null
}

capture_pid=
capture_start() { # NS IFACE FILE
	ip netns exec "$1" tcpdump -Z root -i "$2" -s 0 -U --immediate-mode \
		-w "$3" 'tcp port 25 or tcp port 2525' 2>/dev/null &
	capture_pid=$!
	poll 5 capturing "$capture_pid"
}
capture_stop() {
	sleep 0.2
	kill "$capture_pid" 2>/dev/null
	wait "$capture_pid" 2>/dev/null
}

# A counter of the guard pinned at $1.
counter() {
	STARTTLS_GUARD_PIN_DIR=$1 "$G_BIN" stats --json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); k=sys.argv[1].split("."); v=d[k[0]]; print(v[k[1]] if len(k)>1 else v)' "$2"
}

# cell SERVER CLIENT SIDE FAMILY SCENARIO ADDR PIN: one session, judged.
# Prints "SERVER CLIENT SIDE FAMILY SCENARIO ok|fail|na [why]".
cell() {
	local s=$1 c=$2 side=$3 fam=$4 sc=$5 addr=$6 pin=$7
	local dir=$RUN/$s tok mode=plain port=25 rc why='' before after saw
	local head="$s $c $side $fam $sc"
	case $sc in
	T) mode=tls ;;
	P|E) has_plain "$c" || { echo "$head na no plaintext mode"; return; } ;;
	H) has_plain "$c" || { echo "$head na no plaintext mode"; return; }
	   helo_fallback "$c" || { echo "$head na no HELO fallback"; return; }
	   port=2525 ;;
	esac
	tok=itok$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
	"srv_${s}_mark" "$dir/srv"
	case $sc in
	T) before=$(counter "$pin" tls_upgrades) ;;
	P|H) before=$(counter "$pin" resets_by_reason.plaintext_command) ;;
	E) before=$(counter "$pin" exempt_connections) ;;
	esac
	"cli_$c" "$(ns_c "$s")" $mode "$addr" $port "$tok" "$dir/cli" >"$dir/cli.out" 2>&1
	rc=$?
	# 2: the client cannot do it (swaks sends no AUTH the server has not
	# offered, and servers offer it only after TLS)
	if [ $rc = 2 ] && [ $sc != T ]; then
		echo "$head na $(tail -n1 "$dir/cli.out")"
		return
	fi
	case $sc in
	T|E)
		if ! "srv_${s}_delivered" "$dir/srv" "$tok" 10; then
			why="not delivered (client exit $rc: $(tail -n1 "$dir/cli.out"))"
		elif [ $sc = T ] && ! "srv_${s}_delivered_tls" "$dir/srv" "$tok"; then
			why="delivered, but not over TLS"
		elif [ $sc = E ] && "srv_${s}_delivered_tls" "$dir/srv" "$tok"; then
			why="delivered over TLS: not a plaintext session"
		fi
		after=$(counter "$pin" "$([ $sc = T ] && echo tls_upgrades || echo exempt_connections)")
		[ -z "$why" ] && [ "$after" -le "$before" ] &&
			why="the guard did not count it ($([ $sc = T ] && echo tls_upgrades || echo exempt_connections) $before -> $after)"
		;;
	P|H)
		"srv_${s}_saw_mail" "$dir/srv" 5
		saw=$?
		after=$(counter "$pin" resets_by_reason.plaintext_command)
		if [ $saw = 0 ]; then
			why="MAIL reached the server (client exit $rc)"
		elif [ $saw = 2 ]; then
			why="the server logged no end of the session"
		elif [ "$after" != $((before + 1)) ]; then
			why="plaintext_command resets $before -> $after (client exit $rc: $(tail -n1 "$dir/cli.out"))"
		elif [ $rc = 0 ]; then
			why="the client says its message was accepted"
		elif "srv_${s}_delivered" "$dir/srv" "$tok" 0; then
			why="delivered"
		fi
		;;
	esac
	if [ -n "$why" ]; then
		echo "$head fail $why"
	else
		echo "$head ok"
	fi
}

# replay_check SERVER DIR: the captures of the server-side pass, replayed,
# decide each connection as the guard did live.
replay_check() {
	local s=$1 dir=$2 live replayed why=
	# live: client port -> decision, from the events of the guard
	live=$(python3 - "$dir/events.json" <<'PY'
import json, sys
d = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    key = (e["client"], e["client_port"])
    what = {"reset": "reset: " + e.get("reason", ""), "tls": "tls",
            "exempt": "exempt", "denied": "reset: denied_host",
            "monitor": "monitor: " + e.get("reason", "")}[e["event"]]
    if key not in d or what.startswith("reset"):
        d[key] = what
for (c, p), w in sorted(d.items()):
    print(c, p, w)
PY
) || { echo "$s - server - replay fail events unreadable"; return; }
	replayed=$( { "$G_BIN" replay --json --port 25 --port 2525 "$dir/guarded.pcap" &&
		"$G_BIN" replay --json --port 25 --port 2525 --exempt $CLI4/32 \
			--exempt $CLI6/128 "$dir/exempt.pcap"; } | python3 -c '
import json, sys
d = {}
dec = json.JSONDecoder()
text = sys.stdin.read()
i = 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    o, i = dec.raw_decode(text, i)
    for c in o["connections"]:
        # one begun in the previous phase is judged in its capture
        if c["began_before_capture"]:
            continue
        w = c["decision"]
        if w in ("tls", "exempt") or w.startswith(("reset", "monitor")):
            d[(c["client"], c["client_port"])] = w
for (c, p), w in sorted(d.items()):
    print(c, p, w)
') || { echo "$s - server - replay fail replay failed"; return; }
	if [ -z "$live" ]; then
		why="no live decision recorded"
	elif [ "$live" != "$replayed" ]; then
		why="differs: $(diff <(echo "$live") <(echo "$replayed") | grep '^[<>]' | head -n4 | tr '\n' ';')"
	fi
	if [ -n "$why" ]; then
		echo "$s - server - replay fail $why"
	else
		echo "$s - server - replay ok $(echo "$live" | wc -l) connections"
	fi
}

# --- run the lanes, side by side -----------------------------------------------

export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/stg-interop-$$-unused
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
if ! interop_unpack exim4-daemon-light exim4-base opensmtpd >"$RUN/unpack.err" 2>&1; then
	cat "$RUN/unpack.err"
	echo "FAIL - interop: the MTAs could not be unpacked"
	echo "0 passed, 1 failed"
	exit 1
fi
if [ ! -d "$here/node_modules/nodemailer" ] &&
   ! (cd "$here" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1); then
	echo "FAIL - interop: npm ci (nodemailer) failed"
	echo "0 passed, 1 failed"
	exit 1
fi

n=0
declare -A lanes
for s in $SERVERS; do
	n=$((n + 1))
	[ -n "${INTEROP_ONLY:-}" ] && ! [[ $s =~ $INTEROP_ONLY ]] && continue
	lane "$s" $n >"$RUN/$s.log" 2>&1 &
	lanes[$!]=$s
done
echo "interop: ${#lanes[@]} lanes running side by side (a few minutes)"
while [ ${#lanes[@]} -gt 0 ]; do
	wait -n -p done_pid
	echo "interop: the ${lanes[$done_pid]} lane is done ($(grep -c . "$RUN/${lanes[$done_pid]}.results") results)"
	unset "lanes[$done_pid]"
done

# --- the matrix -------------------------------------------------------------

cat "$RUN"/*.results >"$RUN/all"
passed=0
failed=0
while read -r s _ side _ sc res why; do
	[ "$sc" = setup ] || continue
	echo "FAIL - interop: $s${side:+ ($side side)}: set-up: $why"
	failed=$((failed + 1))
done < <(awk '$5 == "setup"' "$RUN/all")

matrix=$(python3 - "$RUN/all" "$SERVERS" "$CLIENTS" <<'PY'
import sys
rows = [l.split(None, 6) for l in open(sys.argv[1]) if l.strip()]
servers = [s for s in sys.argv[2].split() if any(r[0] == s for r in rows)]
clients = sys.argv[3].split()
res = {}
for r in rows:
    if r[4] in ("setup", "replay"):
        continue
    res.setdefault((r[0], r[1]), []).append(r)
def cell(s, c):
    rs = res.get((s, c), [])
    out = ""
    for sc in "TPHE":
        got = [r for r in rs if r[4] == sc]
        if not got:
            out += "?"
        elif any(r[5] == "fail" for r in got):
            out += "!"
        elif all(r[5] == "na" for r in got):
            out += "-"
        else:
            out += sc
    return out
w = 12
print("| client \\ server | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
for c in clients:
    print("| " + c + " | " + " | ".join(cell(s, c) for s in servers) + " |")
PY
)
echo "interop matrix (each cell: IPv4 and IPv6, guard on the server's side and on the client's)"
printf '%s\n' "$matrix"
echo "T STARTTLS delivered over TLS, P plaintext reset before MAIL, H after a HELO"
echo "fallback reset, E exempt client delivered; - not applicable, ! wrong, ? not run"

# One test per server x client cell: every run of it right.
for s in $SERVERS; do
	grep -q "^$s " "$RUN/all" || continue
	for c in $CLIENTS; do
		bad=$(awk -v s="$s" -v c="$c" '$1 == s && $2 == c && $6 == "fail"' "$RUN/all")
		runs=$(awk -v s="$s" -v c="$c" '$1 == s && $2 == c && $6 != "na"' "$RUN/all" | wc -l)
		if [ -z "$bad" ] && [ "$runs" -gt 0 ]; then
			passed=$((passed + 1))
			echo "ok - interop: $s x $c ($runs sessions)"
		else
			failed=$((failed + 1))
			echo "FAIL - interop: $s x $c"
			[ "$runs" = 0 ] && echo "    no session ran"
			printf '%s\n' "$bad" | sed '/^$/d; s/^/    /'
		fi
	done
	line=$(awk -v s="$s" '$1 == s && $5 == "replay"' "$RUN/all")
	if [[ $line == *" replay ok "* ]]; then
		passed=$((passed + 1))
		echo "ok - interop: $s: replay of the captures decides as the guard did live (${line##* ok })"
	else
		failed=$((failed + 1))
		echo "FAIL - interop: $s: replay of the captures: ${line:-not run}"
	fi
done

if [ $readme = 1 ] && [ "$failed" = 0 ]; then
	python3 - "$here/README.md" "$matrix" "$(date -u +%Y-%m-%d) on Linux $(uname -r)" <<'PY'
import sys, re
path, table, when = sys.argv[1:4]
text = open(path).read()
block = "<!-- matrix -->\n" + "Latest run: " + when + ".\n\n" + table + "\n<!-- /matrix -->"
text = re.sub(r"<!-- matrix -->.*?<!-- /matrix -->", lambda m: block, text, flags=re.S)
open(path, "w").write(text)
PY
	echo "wrote the matrix into $here/README.md"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
