#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# Throughput and connection rate through a real path: two network
# namespaces joined by a veth pair, each configuration in the same run:
#   none      no program, no rule
#   guard     the guard attached (both hooks) to the server's interface
#   iptables  the rule set people use instead (below), no guard
# For each: iperf3 on another port (other traffic) for SECONDS, a TLS bulk
# transfer on port 25 after a real STARTTLS and STARTTLS sessions a second
# for SECONDS/2 (at least 2). ROUNDS rounds, the configurations in turn
# within each (drift on a shared machine weighs on all alike); medians.
# Usage: throughput.sh SECONDS ROUNDS RESULTS_JSON   (as root; the figures
# go into RESULTS_JSON under "throughput")
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=${G_BIN:-$here/../build/starttls-guard}
secs=${1:-10}
rounds=${2:-3}
out=${3:-$here/results.json}
short=$((secs / 2 > 2 ? secs / 2 : 2))
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
	tls=$(ip netns exec "$C" python3 "$here/tls_bulk.py" bulk "$SADDR" 25 "$short")
	local reset=false
	[ "${tls#* }" = reset ] && reset=true && echo "  $1: the TLS transfer was reset"
	tls=${tls%% *}
	rate=$(ip netns exec "$C" python3 "$here/tls_bulk.py" sessions "$SADDR" 25 "$short")
	awk -v n="$1" -v b="$bps" -v t="$tls" -v r="$rate" 'BEGIN {
		printf "  %-9s iperf3 %6.2f Gbit/s   TLS on 25 %6.2f Gbit/s   STARTTLS sessions %6.1f/s\n",
			n, b / 1e9, t * 8 / 1e9, r }'
	echo "{\"config\": \"$1\", \"iperf3_bps\": $bps, \"tls25_bps\": $((tls * 8)), \"sessions_per_s\": $rate, \"tls25_reset\": $reset}" >>"$dir/rows"
}

echo "throughput through a veth pair (iperf3 $secs s, TLS and sessions $short s; $rounds rounds)"
# a warm-up, not counted (the first transfer after set-up runs slower)
ip netns exec "$C" iperf3 -c "$SADDR" -p 5201 -t 1 >/dev/null
resets=0
for r in $(seq "$rounds"); do
	measure none
	nsenter --net="/run/netns/$S" "$G_BIN" attach "$SIF" >/dev/null || exit 1
	measure guard
	resets=$((resets + $(nsenter --net="/run/netns/$S" "$G_BIN" stats --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["resets"])')))
	nsenter --net="/run/netns/$S" "$G_BIN" detach >/dev/null
	# What people use instead: string matches on port 25 that reset
	for s in "MAIL FROM" "AUTH"; do
		ip netns exec "$S" iptables -A INPUT -p tcp --dport 25 -m string --algo bm \
			--string "$s" -j REJECT --reject-with tcp-reset || exit 1
	done
	measure iptables
	ip netns exec "$S" iptables -F INPUT
done
[ "$resets" = 0 ] || echo "  (the guard reset $resets connections: it should reset none)"
python3 - "$dir/rows" "$out" "$secs" "$short" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ("iperf3_bps", "tls25_bps", "sessions_per_s")
configs = {}
for r in rows:
    configs.setdefault(r["config"], []).append(r)
summary = []
for name, rs in configs.items():
    s = {"config": name, "rounds": len(rs),
         "tls25_resets": sum(r["tls25_reset"] for r in rs)}
    for k in keys:
        v = [r[k] for r in rs]
        s[k] = statistics.median(v)
        s[k + "_min"], s[k + "_max"] = min(v), max(v)
    summary.append(s)
base = summary[0]
for s in summary:
    for k in keys:
        s[k.replace("_bps", "").replace("_per_s", "") + "_ratio"] = s[k] / base[k]
try:
    res = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    res = {}
res["throughput"] = {"iperf3_seconds": int(sys.argv[3]), "tls_seconds": int(sys.argv[4]),
                     "configs": summary}
json.dump(res, open(sys.argv[2], "w"), indent=2)
print("medians, and the ratio to no program:")
for s in summary:
    print("  %-9s iperf3 %6.2f Gbit/s (%.3f)   TLS on 25 %6.2f Gbit/s (%.3f)   sessions %6.1f/s (%.3f)"
          % (s["config"], s["iperf3_bps"] / 1e9, s["iperf3_ratio"], s["tls25_bps"] / 1e9,
             s["tls25_ratio"], s["sessions_per_s"], s["sessions_ratio"]))
PY
