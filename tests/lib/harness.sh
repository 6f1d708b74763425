# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
# tests/lib/harness.sh - what the namespace suites share: a pin directory
# of their own, the guard run in the lab's namespaces, run_test and checks.
# Source after lab.sh, with G_BIN set. E2E_ONLY=REGEX runs only the tests
# whose names match.
# Pins of our own: a guard already running on this machine is not touched.
export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/starttls-guard-test-$$

passed=0
failed=0
cleanup() {
	guard_srv detach >/dev/null 2>&1
	guard_cli detach >/dev/null 2>&1
	lab_down
}
trap cleanup EXIT

# The guard runs in the host's mount namespace (its bpffs) but in the
# namespace of the interface it attaches to.
guard_srv() { nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" "$@"; }
guard_cli() { nsenter --net="/run/netns/$LAB_CLI_NS" "$G_BIN" "$@"; }

# Counter from "stats --json" of the guard attached in namespace $1.
counter() {
	nsenter --net="/run/netns/$1" "$G_BIN" stats --json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); k=sys.argv[1].split("."); v=d[k[0]]; print(v[k[1]] if len(k)>1 else v)' "$2"
}

run_test() {
	local name=$1 out
	shift
	[ -n "${E2E_ONLY:-}" ] && ! [[ $name =~ $E2E_ONLY ]] && return 0
	lab_log_mark
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok - ${SUITE:-e2e}: $name"
	else
		failed=$((failed + 1))
		echo "FAIL - ${SUITE:-e2e}: $name"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
	${AFTER_TEST:-true}
	guard_srv detach >/dev/null 2>&1
	guard_cli detach >/dev/null 2>&1
}

expect() { # expect WANT_RC DESCRIPTION CMD...
	local want=$1 what=$2 rc
	shift 2
	"$@"
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "$what: exit $rc, want $want"
		return 1
	fi
}

nothing_left() {
	local ns
	if [ -e "$STARTTLS_GUARD_PIN_DIR" ]; then
		echo "$STARTTLS_GUARD_PIN_DIR left behind"; return 1
	fi
	for ns in "$LAB_SRV_NS" "$LAB_CLI_NS"; do
		if ip netns exec "$ns" tc qdisc show | grep -q clsact; then
			echo "clsact left in $ns"; return 1
		fi
		if nsenter --net="/run/netns/$ns" bpftool net show 2>/dev/null |
			grep -q stg_; then
			echo "program left attached in $ns"; return 1
		fi
	done
}

