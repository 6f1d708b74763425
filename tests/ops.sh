#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Operations: "starttls-guard run" with a configuration file in the
# namespace lab (real Postfix, real clients): JSON events, Prometheus
# metrics scraped with curl, a reload with SIGHUP while a session is in
# progress, interfaces that come and go, SIGTERM. Then the same with the
# container image, "make install DESTDIR=", and the Kubernetes manifests.
# Prints "ok - ops: NAME" / "FAIL - ops: NAME" lines and "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=${G_BIN:-$here/../build/starttls-guard}
SUITE=ops
source "$here/lib/lab.sh"
source "$here/lib/harness.sh"

METRICS=127.0.0.1:9925

# A daemon a failed test left running is stopped before the next test
# (the tests run in subshells: its pid is kept in a file).
stop_daemon() {
	local pid
	pid=$(cat "$LAB_DIR/daemon.pid" 2>/dev/null) || return 0
	rm -f "$LAB_DIR/daemon.pid"
	kill -TERM "$pid" 2>/dev/null || return 0
	poll 20 sh -c "! kill -0 $pid 2>/dev/null"
}
AFTER_TEST=stop_daemon

# The daemon's metrics (or /healthz) as seen from the server's namespace.
scrape() { lab_srv curl -sf "http://$METRICS/${1:-metrics}"; }
# metric NAME_AND_LABELS: its value
metric() { scrape | awk -v m="$1" '$1 == m { print $2 }'; }
wait_metric() { # NAME VALUE [TIMEOUT]
	poll "${3:-20}" test "$(metric "$1")" = "$2" ||
		{ echo "$1 = $(metric "$1"), want $2"; return 1; }
}

# events FILE FILTER: how many JSON events in FILE match the Python
# expression FILTER over e (one event).
events() {
	python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    n += bool(eval(sys.argv[2]))
print(n)' "$1" "$2"
}

write_conf() { # FILE EXEMPT [EXTRA]
	cat >"$1" <<CONF
# starttls-guard.conf for the namespace lab
interfaces = $LAB_SRV_IF, stghp*
port = 25
mode = enforce
default = require-tls
exempt = $2
metrics = $METRICS
${3:-}
CONF
}

# The daemon in the server's namespace: what run.sh would start under
# systemd, here in the background with its output kept.
start_daemon() { # OUT ERR CMD...
	local out=$1 err=$2
	shift 2
	"$@" >"$out" 2>"$err" &
	daemon_pid=$!
	echo "$daemon_pid" >"$LAB_DIR/daemon.pid"
	poll 30 scrape healthz >/dev/null ||
		{ echo "daemon not healthy:"; cat "$err"; return 1; }
	wait_metric starttls_guard_attached_interfaces 1 || { cat "$err"; return 1; }
}

daemon_checks() { # CONF OUT ERR [CONF_AS_THE_DAEMON_NAMES_IT]
	local conf=$1 out=$2 err=$3 named=${4:-$1} t=tok$RANDOM$RANDOM line rc
	expect 3 "plaintext MAIL (want a reset)" lab_smtp_client \
		--server "$LAB_SRV4" --token "p$t" || return 1
	expect 0 "STARTTLS" lab_smtp_client --server "$LAB_SRV4" --starttls \
		--token "s$t" || return 1
	lab_wait_delivered "s$t" || { echo "STARTTLS message not delivered"; return 1; }
	expect 0 "exempt client in plaintext" lab_smtp_client --server "$LAB_SRV4" \
		--source "$LAB_CLI4_ALT" --token "e$t" || return 1
	# A session in progress while the configuration changes: the exempt
	# client loses its exemption. The session keeps its state; new ones
	# get the new rule.
	coproc HELD { lab_smtp_client --server "$LAB_SRV4" --source "$LAB_CLI4_ALT" \
		--hold --token "h$t"; }
	read -r -t 20 line <&"${HELD[0]}"
	[ "$line" = HELD ] || { echo "client did not reach EHLO: $line"; return 1; }
	# (A change of the file is seen and applied: no signal needed.)
	write_conf "$conf" "" "deny = 198.51.100.0/24"
	wait_metric 'starttls_guard_config_reloads_total{result="success"}' 1 ||
		{ cat "$err"; return 1; }
	echo go >&"${HELD[1]}"
	read -r -t 20 line <&"${HELD[0]}"
	wait "$HELD_PID"
	rc=$?
	[ "$rc" = 0 ] || { echo "the session in progress was cut by the reload: exit $rc ($line)"; return 1; }
	lab_wait_delivered "h$t" || { echo "held message not delivered"; return 1; }
	expect 3 "the formerly exempt client, after the reload" lab_smtp_client \
		--server "$LAB_SRV4" --source "$LAB_CLI4_ALT" --token "n$t" || return 1
	guard_srv allow list | grep -q "198.51.100.0/24 *deny" ||
		{ echo "deny entry not applied"; guard_srv allow list; return 1; }

	# A configuration with an error: refused with its line, the running one stays.
	printf 'port = 25\nmode = enforce\nport = 99999\n' >"$conf"
	wait_metric 'starttls_guard_config_reloads_total{result="failure"}' 1 || return 1
	grep -q "$named:3: bad port '99999'" "$err" || { echo "no line-numbered error:"; cat "$err"; return 1; }
	# SIGHUP reads it again, even unchanged: refused again.
	kill -HUP "$daemon_pid"
	wait_metric 'starttls_guard_config_reloads_total{result="failure"}' 2 || { cat "$err"; return 1; }
	expect 3 "still enforced after a refused reload" lab_smtp_client \
		--server "$LAB_SRV4" --token "r$t" || return 1

	# Events: one JSON line per decision, no address or credential.
	poll 10 test "$(events "$out" 'e["event"] == "reset"')" = 3 ||
		{ echo "reset events:"; cat "$out"; return 1; }
	[ "$(events "$out" 'e["event"] == "reset" and e["reason"] == "plaintext_command" and e["verb"] == "MAIL" and e["server"] == "'"$LAB_SRV4"'" and e["server_port"] == 25 and e["state"] == "plaintext" and e["interface"] == "'"$LAB_SRV_IF"'" and e["direction"] == "ingress"')" = 3 ] ||
		{ echo "reset events lack fields:"; cat "$out"; return 1; }
	[ "$(events "$out" 'e["event"] == "reset" and e["client"] == "'"$LAB_CLI4_ALT"'"')" = 1 ] ||
		{ echo "no reset of the formerly exempt client"; cat "$out"; return 1; }
	[ "$(events "$out" 'e["event"] == "tls"')" = 1 ] || { cat "$out"; return 1; }
	[ "$(events "$out" 'e["event"] == "exempt"')" = 2 ] || { cat "$out"; return 1; }
	if grep -qi "alice\|bob@\|example.org" "$out" "$err"; then
		echo "an address reached the logs"; return 1
	fi

	# Metrics: the same numbers as the traffic.
	wait_metric 'starttls_guard_resets_total{reason="plaintext_command"}' 3 || return 1
	wait_metric starttls_guard_connections_evicted_total 0 || return 1
	wait_metric starttls_guard_tls_upgrades_total 1 || return 1
	wait_metric starttls_guard_exempt_connections_total 2 || return 1
	wait_metric starttls_guard_events_lost_total 0 || return 1
	[ "$(metric starttls_guard_connections_capacity)" = 65536 ] || return 1
	scrape | grep -q '^starttls_guard_build_info{version="' || return 1
	[ "$(lab_srv curl -s -o /dev/null -w '%{http_code}' "http://$METRICS/nothing")" = 404 ] || return 1

	# A good file again, with metrics moved: served at the new address.
	# (written aside, then renamed into place, as editors do: one change)
	write_conf "$conf.new" "" "deny = 198.51.100.0/24"
	sed -i "s/^metrics = .*/metrics = 127.0.0.1:9926/" "$conf.new"
	mv "$conf.new" "$conf"
	METRICS=127.0.0.1:9926 wait_metric 'starttls_guard_config_reloads_total{result="success"}' 2 ||
		{ cat "$err"; return 1; }
	local METRICS=127.0.0.1:9926
	lab_srv curl -s "http://127.0.0.1:9925/healthz" && { echo "old metrics address still served"; return 1; }

	# Clients that trickle their request (one byte every 0.3 s, for 60 s)
	# hold up neither the events nor the rest: the reset's event is out
	# while they are still sending.
	local slow=() k
	for k in 1 2 3; do
		lab_srv python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
end = time.time() + 60
while time.time() < end:
    try:
        s.send(b"G")
    except OSError:
        pass
    time.sleep(0.3)' 9926 &
		slow+=($!)
	done
	sleep 1
	expect 3 "plaintext MAIL while slow clients trickle" lab_smtp_client \
		--server "$LAB_SRV4" --token "w$t" || return 1
	poll 30 test "$(events "$out" 'e["event"] == "reset"')" = 4 ||
		{ echo "the event waited for the slow clients"; kill "${slow[@]}"; return 1; }
	kill -0 "${slow[@]}" || { echo "slow clients ended before the check"; return 1; }
	scrape healthz >/dev/null || { echo "healthz not answered"; kill "${slow[@]}"; return 1; }
	kill "${slow[@]}"
	wait "${slow[@]}" 2>/dev/null

	# One daemon per pin directory.
	local second
	second=$(guard_srv run --config "$conf" 2>&1) && { echo "a second daemon ran"; return 1; }
	grep -q "another 'starttls-guard run'" <<<"$second" || { echo "$second"; return 1; }

	# An interface that appears is attached; one that goes is forgotten.
	lab_srv ip link add stghp0 type veth peer name stgxp0 || return 1
	wait_metric starttls_guard_attached_interfaces 2 || { cat "$err"; return 1; }
	lab_srv ip link del stghp0
	wait_metric starttls_guard_attached_interfaces 1 || { cat "$err"; return 1; }

	kill -TERM "$daemon_pid"
	wait "$daemon_pid"
	rc=$?
	[ "$rc" = 0 ] || { echo "daemon exit $rc after SIGTERM"; cat "$err"; return 1; }
	nothing_left
}

t_run() {
	local conf=$LAB_DIR/guard.conf
	write_conf "$conf" "$LAB_CLI4_ALT/32"
	# (nsenter execs the daemon: signals sent to the pid reach it)
	start_daemon "$LAB_DIR/run.out" "$LAB_DIR/run.err" \
		nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" run --config "$conf" || return 1
	daemon_checks "$conf" "$LAB_DIR/run.out" "$LAB_DIR/run.err"
}

# The same with the container image (make image: FROM scratch, the static
# binary), run by podman in the server's namespace with the host's bpffs.
IMAGE=localhost/starttls-guard:test-$$
t_container() {
	local conf=$LAB_DIR/guard.conf rc
	make -s -C "$here/.." image IMAGE="$IMAGE" >/dev/null || { echo "image build failed"; return 1; }
	write_conf "$conf" "$LAB_CLI4_ALT/32"
	start_daemon "$LAB_DIR/c.out" "$LAB_DIR/c.err" \
		podman --runtime runc run --rm --privileged \
		--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--network "ns:/run/netns/$LAB_SRV_NS" -v /sys/fs/bpf:/sys/fs/bpf \
		-v "$LAB_DIR:/conf:ro" -e STARTTLS_GUARD_PIN_DIR \
		"$IMAGE" run --config /conf/guard.conf || return 1
	daemon_checks "$conf" "$LAB_DIR/c.out" "$LAB_DIR/c.err" /conf/guard.conf
	rc=$?
	podman rmi -f "$IMAGE" >/dev/null 2>&1
	return $rc
}

# Detached from outside, the daemon says so and exits 1 (to be started
# again by systemd or Kubernetes) rather than run guarding nothing; a start
# that fails leaves nothing behind, keep-attached or not.
t_run_detached() {
	local conf=$LAB_DIR/guard.conf rc out
	write_conf "$conf" ""
	start_daemon "$LAB_DIR/d.out" "$LAB_DIR/d.err" \
		nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" run --config "$conf" || return 1
	guard_srv detach >/dev/null || return 1
	wait "$daemon_pid"
	rc=$?
	[ "$rc" = 1 ] && grep -q "detached by someone else" "$LAB_DIR/d.err" ||
		{ echo "exit $rc"; cat "$LAB_DIR/d.err"; return 1; }
	nothing_left || return 1
	# The metrics port taken: the start fails, and leaves nothing.
	lab_srv python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9925)); s.listen(); time.sleep(30)' &
	local holder=$!
	poll 20 sh -c "ip netns exec $LAB_SRV_NS ss -ltn | grep -q '$METRICS '" ||
		{ echo "the port holder did not start"; return 1; }
	write_conf "$conf" "" "keep-attached = yes"
	out=$(timeout 60 nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" run --config "$conf" 2>&1)
	rc=$?
	kill "$holder"
	[ "$rc" = 1 ] && grep -q "couldn't serve metrics on $METRICS" <<<"$out" ||
		{ echo "exit $rc: $out"; return 1; }
	nothing_left
}

# Errors of the daemon: one line, exit 2, nothing attached.
t_run_errors() {
	local conf=$LAB_DIR/bad.conf out
	printf 'interfaces = %s\nmode = loud\n' "$LAB_SRV_IF" >"$conf"
	out=$(guard_srv run --config "$conf" 2>&1)
	[ $? = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] &&
		grep -q "bad.conf:2: bad mode 'loud'" <<<"$out" || { echo "$out"; return 1; }
	printf 'interfaces = %s\nno-such-key = 1\n' "$LAB_SRV_IF" >"$conf"
	out=$(guard_srv run --config "$conf" 2>&1)
	[ $? = 2 ] && grep -q "bad.conf:2: unknown key 'no-such-key'" <<<"$out" || { echo "$out"; return 1; }
	out=$(guard_srv run --config "$LAB_DIR/none.conf" 2>&1)
	[ $? = 2 ] && grep -q "none.conf: No such file" <<<"$out" || { echo "$out"; return 1; }
	expect 2 "bad --metrics" guard_srv run --metrics nowhere 2>/dev/null || return 1
	nothing_left
}

# "events" follows the ring buffer of a guard attached by hand; the
# daemon logs to syslog with --log syslog (a /dev/log of a private mount
# namespace); default-route follows the routes; --keep-attached leaves the
# guard in place.
t_events_syslog() {
	local ev=$LAB_DIR/events.out conf=$LAB_DIR/route.conf rc
	guard_srv attach "$LAB_SRV_IF" >/dev/null || return 1
	nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" events --json >"$ev" 2>&1 &
	local evpid=$!
	sleep 0.5
	expect 3 "plaintext MAIL" lab_smtp_client --server "$LAB_SRV4" --token "p$RANDOM" || return 1
	poll 10 grep -q '"event":"reset"' "$ev" || { echo "no event from 'events':"; cat "$ev"; return 1; }
	# A line that is no command (credentials sent where a verb goes) is
	# reset, and its event says "other": the bytes themselves never show.
	lab_cli timeout 20 python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 25))
f = s.makefile("rwb", buffering=0)
f.readline()
f.write(b"EHLO c.example.org\r\n")
while f.readline()[3:4] == b"-":
    pass
f.write(b"c2VjcmV0cGFzcw==\r\n")
try:
    print(f.readline())
except ConnectionResetError:
    print("reset")' "$LAB_SRV4" | grep -q "^reset$" || { echo "the base64 line was not reset"; return 1; }
	poll 10 grep -q '"verb":"other"' "$ev" || { echo "no 'other' verb:"; cat "$ev"; return 1; }
	grep -qi "c2VjcmV0" "$ev" && { echo "the line's bytes reached the events"; return 1; }
	kill -TERM "$evpid"
	wait "$evpid"
	rc=$?
	[ "$rc" = 0 ] || { echo "events exit $rc"; return 1; }
	python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$ev" ||
		{ echo "not JSON:"; cat "$ev"; return 1; }
	grep -q '"verb":"MAIL"' "$ev" && ! grep -q "example.org" "$ev" || { cat "$ev"; return 1; }
	guard_srv detach >/dev/null || return 1

	printf 'interfaces = default-route
metrics = %s
log = syslog
' "$METRICS" >"$conf"
	lab_srv ip route add default dev "$LAB_SRV_IF" || return 1
	# The daemon in a mount namespace whose /dev/log is a test socket;
	# SIGTERM is passed on to it.
	unshare -m bash -c '
		mount --make-rprivate / && mount -t tmpfs tmpfs /dev || exit 1
		python3 "$1/lib/syslog_sink.py" /dev/log "$2/syslog.out" \
			>"$2/sink.log" 2>&1 &
		sink=$!
		for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
		nsenter --net="/run/netns/$3" "$4" run --config "$5" --keep-attached \
			>"$2/sys.out" 2>"$2/sys.err" &
		d=$!
		trap "kill -TERM $d" TERM
		wait $d
		wait $d
		rc=$?
		kill $sink
		exit $rc' _ "$here" "$LAB_DIR" "$LAB_SRV_NS" "$G_BIN" "$conf" \
		>"$LAB_DIR/unshare.log" 2>&1 &
	daemon_pid=$!
	echo "$daemon_pid" >"$LAB_DIR/daemon.pid"
	poll 30 scrape healthz >/dev/null || { cat "$LAB_DIR/sys.err"; return 1; }
	wait_metric starttls_guard_attached_interfaces 1 || return 1
	guard_srv status | grep -q "interfaces: *$LAB_SRV_IF" || { guard_srv status; return 1; }
	expect 3 "plaintext MAIL" lab_smtp_client --server "$LAB_SRV4" --token "q$RANDOM" || return 1
	poll 10 grep -q "starttls-guard\[[0-9]*\]: .* reset plaintext_command client $LAB_CLI4:[0-9]* server $LAB_SRV4:25 on $LAB_SRV_IF ingress, was plaintext, verb MAIL" \
		"$LAB_DIR/syslog.out" || { echo "syslog:"; cat "$LAB_DIR/syslog.out"; return 1; }
	[ -s "$LAB_DIR/sys.out" ] && { echo "events on stdout with --log syslog"; return 1; }
	# The default route goes: so does the attachment.
	lab_srv ip route del default dev "$LAB_SRV_IF" || return 1
	wait_metric starttls_guard_attached_interfaces 0 || return 1
	lab_srv ip route add default dev "$LAB_SRV_IF" || return 1
	wait_metric starttls_guard_attached_interfaces 1 || return 1
	kill -TERM "$daemon_pid"
	wait "$daemon_pid"
	rc=$?
	lab_srv ip route del default dev "$LAB_SRV_IF"
	[ "$rc" = 0 ] || { echo "exit $rc"; cat "$LAB_DIR/sys.err"; return 1; }
	guard_srv status | grep -q "interfaces: *$LAB_SRV_IF" ||
		{ echo "--keep-attached did not keep it"; guard_srv status; return 1; }
	expect 3 "still enforced after the daemon left" lab_smtp_client \
		--server "$LAB_SRV4" --token "k$RANDOM" || return 1
	guard_srv detach >/dev/null && nothing_left
}

# make static, then make install DESTDIR=: every file where it belongs,
# the unit filled in and accepted by systemd, the man pages readable, the
# sample configuration valid and never written over.
t_install() {
	local d=$LAB_DIR/root out
	make -s -C "$here/.." static >/dev/null || return 1
	file "$here/../build/static/starttls-guard" | grep -q "statically linked" ||
		{ echo "static binary is not"; return 1; }
	"$here/../build/static/starttls-guard" --version | grep -q "^starttls-guard " || return 1
	make -s -C "$here/.." install DESTDIR="$d" PREFIX=/usr >/dev/null || return 1
	for f in usr/sbin/starttls-guard usr/share/man/man8/starttls-guard.8 \
		usr/share/man/man5/starttls-guard.conf.5 \
		usr/lib/systemd/system/starttls-guard.service \
		etc/starttls-guard/starttls-guard.conf; do
		[ -s "$d/$f" ] || { echo "missing: /$f"; return 1; }
	done
	[ -x "$d/usr/sbin/starttls-guard" ] || return 1
	grep -q '@[A-Z]*@' "$d/usr/lib/systemd/system/starttls-guard.service" &&
		{ echo "unit not filled in"; return 1; }
	grep -q "^ExecStart=/usr/sbin/starttls-guard run --config /etc/starttls-guard/starttls-guard.conf$" \
		"$d/usr/lib/systemd/system/starttls-guard.service" || return 1
	# systemd's own check, of a copy that runs the binary where it is now
	sed "s|^ExecStart=/usr/sbin/|ExecStart=$d/usr/sbin/|" \
		"$d/usr/lib/systemd/system/starttls-guard.service" >"$LAB_DIR/starttls-guard.service"
	out=$(systemd-analyze verify --man=no "$LAB_DIR/starttls-guard.service" 2>&1) || out="failed: $out"
	[ -z "$out" ] || { echo "systemd-analyze verify:"; echo "$out"; return 1; }
	"$d/usr/sbin/starttls-guard" run --check --config "$d/etc/starttls-guard/starttls-guard.conf" >/dev/null || return 1
	for m in man8/starttls-guard.8 man5/starttls-guard.conf.5; do
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$d/usr/share/man/$m" 2>&1 >/dev/null)
		[ -z "$out" ] || { echo "$m: $out"; return 1; }
	done
	echo "# mine" >>"$d/etc/starttls-guard/starttls-guard.conf"
	make -s -C "$here/.." install DESTDIR="$d" PREFIX=/usr >/dev/null || return 1
	grep -q "^# mine" "$d/etc/starttls-guard/starttls-guard.conf" ||
		{ echo "install wrote over the configuration"; return 1; }
	make -s -C "$here/.." install DESTDIR="$d/local" >/dev/null || return 1
	[ -x "$d/local/usr/local/sbin/starttls-guard" ] &&
	[ -s "$d/local/usr/local/lib/systemd/system/starttls-guard.service" ] &&
	[ -s "$d/local/usr/local/share/man/man8/starttls-guard.8" ] || { echo "PREFIX not honoured"; return 1; }
	grep -q "^ExecStart=/usr/local/sbin/starttls-guard " "$d/local/usr/local/lib/systemd/system/starttls-guard.service" || return 1
}

# The Kubernetes manifests: yamllint, the Kubernetes API schema (offline,
# kubernetes-models from the npm registry), what the DaemonSet needs, and
# the ConfigMap's configuration file read by the daemon. A broken
# manifest must fail the check.
t_manifests() {
	local k8s=$here/k8s deploy=$here/../deploy out
	(cd "$k8s" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) ||
		{ echo "npm ci failed"; return 1; }
	yamllint -s -c "$deploy/kubernetes/.yamllint" "$deploy/kubernetes" \
		"$deploy/kubernetes-privileged" || return 1
	node "$k8s/validate.js" --config-out "$LAB_DIR/k8s.conf" \
		"$deploy/kubernetes" "$deploy/kubernetes-privileged" || return 1
	"$G_BIN" run --check --config "$LAB_DIR/k8s.conf" >/dev/null || return 1
	mkdir -p "$LAB_DIR/broken" && cp "$deploy"/kubernetes/*.yaml "$LAB_DIR/broken/" &&
		sed -i 's/hostNetwork: true/hostNetwork: "yes"/' "$LAB_DIR/broken/daemonset.yaml" || return 1
	out=$(node "$k8s/validate.js" "$LAB_DIR/broken") && { echo "a broken manifest passed"; return 1; }
	grep -q "hostNetwork" <<<"$out" || { echo "$out"; return 1; }
}

lab_up || { echo "FAIL - ops: lab setup"; echo "0 passed, 1 failed"; exit 1; }
run_test "run: config file, events, metrics, reload mid-session, hot-plug, SIGTERM" t_run
run_test "run: configuration errors name their line, nothing attached" t_run_errors
run_test "run: detached from outside it exits 1; a failed start leaves nothing" t_run_detached
run_test "events command; --log syslog; default-route; --keep-attached" t_events_syslog
run_test "container image: the same, run by podman" t_container
run_test "make static, make install DESTDIR= PREFIX=: files, unit, man pages" t_install
run_test "Kubernetes manifests: yamllint, API schema, DaemonSet needs" t_manifests
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
