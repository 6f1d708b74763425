#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# The main job on real traffic: a mail server (Postfix, STARTTLS offered but
# not required) and a client in two network namespaces, starttls-guard
# attached to the server's interface. A plaintext client is reset before its
# MAIL FROM reaches Postfix; a STARTTLS client delivers. Everything is
# removed at the end.
set -u
here=$(cd "$(dirname "$0")" && pwd)
G_BIN=$here/../build/starttls-guard
source "$here/lib/lab.sh"
# Pins of its own, so that a guard already running here is not touched.
export STARTTLS_GUARD_PIN_DIR=/sys/fs/bpf/starttls-guard-demo-$$
guard() { nsenter --net="/run/netns/$LAB_SRV_NS" "$G_BIN" "$@"; }
trap 'guard detach >/dev/null 2>&1; lab_down' EXIT

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Lab: client $LAB_CLI4 <-> Postfix on $LAB_SRV4:25 (two namespaces, a veth)"
lab_up || exit 1
say "starttls-guard attach $LAB_SRV_IF"
guard attach "$LAB_SRV_IF" || exit 1
guard status

# swaks's transcript: the SMTP dialogue, without the message text and
# the EHLO keywords that do not matter here
transcript() {
	grep -E '^ *(<-|->|<~|~>|===|\*\*\*) ' |
		grep -vE '^ *~> +(Date|To|From|Subject|Message-Id|X-Mailer|This is a test|$)' |
		grep -vE '^<[-~] +250-(PIPELINING|SIZE|VRFY|ETRN|ENHANCED|8BITMIME|DSN|SMTPUTF8)'
}

say "A client that sends MAIL FROM in plaintext (swaks, no --tls)"
lab_swaks --to bob@example.org --server "$LAB_SRV4" --header "Subject: demo-plain" 2>&1 |
	transcript
say "A client that upgrades with STARTTLS first (swaks --tls)"
lab_swaks --to bob@example.org --server "$LAB_SRV4" --tls --header "Subject: demo-tls" 2>&1 |
	transcript

say "What Postfix saw"
lab_wait_delivered demo-tls 5
lab_log | grep -E 'smtpd.*(connect from|disconnect from|lost connection|TLS connection)' | sed 's/^/  /'
printf '  mailbox: plaintext message %s, STARTTLS message %s\n' \
	"$(lab_delivered demo-plain && echo DELIVERED || echo 'not delivered')" \
	"$(lab_delivered demo-tls && echo delivered || echo 'NOT DELIVERED')"

say "starttls-guard stats"
guard stats
say "starttls-guard detach"
guard detach
