# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
# tests/interop/srv_aiosmtpd.sh - aiosmtpd (Debian's python3-aiosmtpd
# 1.4.3) as an interop server: tests/interop/aiosmtpd_server.py, one
# Python process in the namespace, run by Debian's /usr/bin/python3 (the
# package's module is not visible to other interpreters).
#
#     source tests/interop/srv_aiosmtpd.sh
#     srv_aiosmtpd_start NS DIR      # listening on *:25 and *:2525 in NS
#     srv_aiosmtpd_mark DIR; ...; srv_aiosmtpd_saw_mail DIR
#     srv_aiosmtpd_delivered DIR TOKEN; srv_aiosmtpd_delivered_tls DIR TOKEN
#     srv_aiosmtpd_stop NS DIR
#
# Files in DIR: tls/{cert,key}.pem, server.log ("s=N cmd=VERB" per
# command, "s=N disconnect ..." at the end of a session: no arguments,
# no credentials), mailbox (mbox; each message has "X-Interop-TLS: yes
# (...)" or "X-Interop-TLS: no" and a Received: header), server.pid.

_SRV_AIO_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRV_AIOSMTPD_PYTHON=${SRV_AIOSMTPD_PYTHON:-/usr/bin/python3}

# shellcheck source=../lib/wait.sh
declare -F poll >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/../lib/wait.sh"

_srv_aio_err() { echo "srv_aiosmtpd: $*" >&2; }

_srv_aio_ready() {
	local a p
	kill -0 "$2" 2>/dev/null || return 0    # died: stop polling
	[ -e "$3/ready" ] || return 1
	for a in 192.0.2.25 2001:db8::25; do
		for p in 25 2525; do
			smtp_banner "$1" "$a" "$p" || return 1
		done
	done
}

srv_aiosmtpd_start() {
	local ns=${1:?NS} d=${2:?DIR} pid
	"$SRV_AIOSMTPD_PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
		{ _srv_aio_err "python3-aiosmtpd missing for $SRV_AIOSMTPD_PYTHON"; return 1; }
	mkdir -p "$d/tls" && chmod 755 "$d" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
		-subj /CN=mx.interop.test -keyout "$d/tls/key.pem" \
		-out "$d/tls/cert.pem" >/dev/null 2>&1 ||
		{ _srv_aio_err "openssl req failed"; return 1; }
	chmod 600 "$d/tls/key.pem"
	rm -f "$d/ready"
	: >"$d/server.log"
	: >"$d/mailbox"
	ip netns exec "$ns" "$SRV_AIOSMTPD_PYTHON" \
		"$_SRV_AIO_LIBDIR/aiosmtpd_server.py" "$d" \
		</dev/null >>"$d/stderr.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/server.pid"
	if ! poll 10 _srv_aio_ready "$ns" "$pid" "$d" ||
		! kill -0 "$pid" 2>/dev/null; then
		_srv_aio_err "no 220 on *:25/*:2525 within 10 s: $(tail -n1 "$d/stderr.log" 2>/dev/null)"
		srv_aiosmtpd_stop "$ns" "$d"
		return 1
	fi
	return 0
}

_srv_aio_gone() { ! kill -0 "$1" 2>/dev/null; }

srv_aiosmtpd_stop() {
	local d=${2:?DIR} pid
	[ -s "$d/server.pid" ] || return 0
	pid=$(cat "$d/server.pid")
	kill -TERM "$pid" 2>/dev/null
	if ! poll 5 _srv_aio_gone "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		poll 2 _srv_aio_gone "$pid" ||
			{ _srv_aio_err "server $pid would not stop"; return 1; }
	fi
	wait "$pid" 2>/dev/null
	rm -f "$d/server.pid" "$d/ready"
	return 0
}

srv_aiosmtpd_mark() {
	local d=${1:?DIR}
	stat -c %s "$d/server.log" >"$d/mark" 2>/dev/null ||
		{ _srv_aio_err "no log in $d"; return 1; }
}

_srv_aio_since_mark() {
	local m=0
	[ -s "$1/mark" ] && m=$(cat "$1/mark")
	tail -c "+$((m + 1))" "$1/server.log"
}

# _srv_aio_tls DIR TOKEN: print the X-Interop-TLS value of the (first)
# message whose text contains TOKEN; nothing if there is none.
_srv_aio_tls() {
	awk -v tok="$2" '
		/^From / { tls = ""; hdr = 1; next }
		hdr && /^X-Interop-TLS: / { tls = substr($0, 16) }
		hdr && /^$/ { hdr = 0 }
		index($0, tok) { print (tls == "" ? "?" : tls); exit }' "$1/mailbox"
}

_srv_aio_has() { [ -n "$(_srv_aio_tls "$1" "$2")" ]; }

srv_aiosmtpd_delivered() {
	local d=${1:?DIR} tok=${2:?TOKEN} t=${3:-10}
	poll "$t" _srv_aio_has "$d" "$tok" && return 0
	_srv_aio_err "no message with $tok in $d/mailbox after ${t}s"
	return 1
}

srv_aiosmtpd_delivered_tls() {
	local d=${1:?DIR} tok=${2:?TOKEN} v
	v=$(_srv_aio_tls "$d" "$tok")
	case $v in
	"") _srv_aio_err "no message with $tok"; return 2 ;;
	yes*) return 0 ;;
	*) return 1 ;;
	esac
}

# _srv_aio_scan DIR: 0 = a session ended and MAIL was seen since the
# mark, 1 = ended without MAIL, 2 = no end yet.
_srv_aio_scan() {
	_srv_aio_since_mark "$1" | awk '
		$3 == "disconnect" { ended = 1 }
		$3 == "cmd=MAIL" { mail = 1 }
		END { if (!ended) exit 2; exit mail ? 0 : 1 }'
}

_srv_aio_ended() { _srv_aio_scan "$1"; [ $? != 2 ]; }

srv_aiosmtpd_saw_mail() {
	local d=${1:?DIR} t=${2:-5} rc
	poll "$t" _srv_aio_ended "$d"
	_srv_aio_scan "$d"
	rc=$?
	[ "$rc" = 2 ] && _srv_aio_err "no end of session logged within ${t}s"
	return "$rc"
}
