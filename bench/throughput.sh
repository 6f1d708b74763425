#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Throughput and connection rate through a real path: two network
# namespaces joined by a veth pair, each configuration in the same run:
#   none      no program, no rule
#   guard     the guard attached (both hooks) to the server's interface
#   iptables  the rule set people use instead (below), no guard
# For each: iperf3 on another port (other traffic), a TLS bulk transfer on
# port 25 after a real STARTTLS, and STARTTLS sessions a second.
# Usage: throughput.sh SECONDS RESULTS_JSON   (as root; the figures go
# into RESULTS_JSON under "throughput")
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=${G_BIN:-$here/../build/starttls-guard}
secs=${1:-10}
out=${2:-$here/results.json}
S=stgb-srv-$$ C=stgb-cli-$$ SIF=stgbs$$ CIF=stgbc$$
SADDR=10.77.0.2 CADDR=10.77.0.1
export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/starttls-guard-bench-$$
dir=$(mktemp -d)

command -v iperf3 >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null ||
	{ echo "bench: iperf3 is needed" >&2; exit 1; }

cleanup() {
	nsenter --net="/run/netns/$S" "$G_BIN" detach >/dev/null 2>&1
	ip netns pids "$S" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns pids "$C" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$S" 2>/dev/null
	ip netns del "$C" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$S" && ip netns add "$C" &&
ip -n "$S" link add "$SIF" type veth peer name "$CIF" netns "$C" &&
ip -n "$S" addr add "$SADDR/24" dev "$SIF" && ip -n "$C" addr add "$CADDR/24" dev "$CIF" &&
ip -n "$S" link set "$SIF" up && ip -n "$C" link set "$CIF" up &&
ip -n "$S" link set lo up && ip -n "$C" link set lo up || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench \
	-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || exit 1
ip netns exec "$S" iperf3 -s -D -p 5201 >/dev/null
ip netns exec "$S" python3 "$here/tls_bulk.py" server "$SADDR" 25 "$dir/cert.pem" "$dir/key.pem" &
sleep 1

measure() { # NAME
	local bps tls rate
	bps=$(ip netns exec "$C" iperf3 -c "$SADDR" -p 5201 -t "$secs" -J |
		python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))')
	tls=$(ip netns exec "$C" python3 "$here/tls_bulk.py" bulk "$SADDR" 25 "$secs")
	rate=$(ip netns exec "$C" python3 "$here/tls_bulk.py" sessions "$SADDR" 25 "$secs")
	awk -v n="$1" -v b="$bps" -v t="$tls" -v r="$rate" 'BEGIN {
		printf "  %-9s iperf3 %6.2f Gbit/s   TLS on 25 %6.2f Gbit/s   STARTTLS sessions %6.1f/s\n",
			n, b / 1e9, t * 8 / 1e9, r }'
	echo "{\"config\": \"$1\", \"iperf3_bps\": $bps, \"tls25_bps\": $((tls * 8)), \"sessions_per_s\": $rate}" >>"$dir/rows"
}

echo "throughput through a veth pair ($secs s each, same run)"
measure none
nsenter --net="/run/netns/$S" "$G_BIN" attach "$SIF" >/dev/null || exit 1
measure guard
resets=$(nsenter --net="/run/netns/$S" "$G_BIN" stats --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["resets"])')
nsenter --net="/run/netns/$S" "$G_BIN" detach >/dev/null
# What people use instead: string matches on port 25 that reset
for s in "MAIL FROM" "AUTH"; do
	ip netns exec "$S" iptables -A INPUT -p tcp --dport 25 -m string --algo bm \
		--string "$s" -j REJECT --reject-with tcp-reset || exit 1
done
measure iptables
ip netns exec "$S" iptables -F INPUT
[ "$resets" = 0 ] || echo "  (the guard reset $resets connections: it should reset none)"
python3 - "$dir/rows" "$out" "$secs" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]
for r in rows:
    r["iperf3_ratio"] = r["iperf3_bps"] / base["iperf3_bps"]
    r["tls25_ratio"] = r["tls25_bps"] / base["tls25_bps"]
    r["sessions_ratio"] = r["sessions_per_s"] / base["sessions_per_s"]
try:
    res = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    res = {}
res["throughput"] = {"seconds": int(sys.argv[3]), "configs": rows}
json.dump(res, open(sys.argv[2], "w"), indent=2)
for r in rows[1:]:
    print("  %-9s / none: iperf3 %.3f, TLS on 25 %.3f, sessions %.3f"
          % (r["config"], r["iperf3_ratio"], r["tls25_ratio"], r["sessions_ratio"]))
PY
