# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
# tests/interop/srv_opensmtpd.sh - OpenSMTPD 6.8 (Debian 12's package,
# unpacked by pkgs.sh, never installed) as an interop server.
#
#     source tests/interop/srv_opensmtpd.sh
#     srv_opensmtpd_start NS DIR      # listening on *:25 and *:2525 in NS
#     srv_opensmtpd_mark DIR; ...; srv_opensmtpd_saw_mail DIR
#     srv_opensmtpd_delivered DIR TOKEN; srv_opensmtpd_delivered_tls DIR TOKEN
#     srv_opensmtpd_stop NS DIR
#
# How it runs privately: smtpd has its paths compiled in (queue
# /var/spool/smtpd, control socket /var/run/smtpd.sock, chroot
# /var/lib/opensmtpd/empty, helpers /usr/libexec/opensmtpd/mail.*) and
# wants the users opensmtpd and opensmtpq.  So it runs in a mount
# namespace of its own (unshare -m inside ip netns exec) where
#   /var          is an overlay whose upper layer is DIR/ovl/up,
#   /run          is DIR/run,
#   /usr/libexec  is a read-only overlay of the unpacked package's
#                 usr/libexec over the system's,
#   /etc/passwd, /etc/group   are copies in DIR/etc with the two users
#                 added, /etc/resolv.conf says nameserver 127.0.0.1
#                 (no DNS traffic leaves the namespace);
# nothing outside DIR is written, no user is added to the system.
#
# OpenSSL 3 workaround: Debian 12's smtpd 6.8.0p2 fails every TLS
# handshake ("rsa routines::missing private key" / "EVP lib", upstream
# OpenSMTPD issues #1171 and #1239): EVP_PKEY_get1_RSA() returns a cached
# copy under OpenSSL 3, so the key hash that the privilege-separated
# signing code attaches to it is lost.  A tiny LD_PRELOAD shim, compiled
# into DIR at start, re-assigns that copy to the EVP_PKEY (what upstream's
# fix, OpenSMTPD PR #1208, does in the source).
#
# Logging: smtpd -d -T smtp writes its log and the SMTP trace of every
# session to DIR/smtpd.log ("smtp: 0xPTR: <<< COMMAND" for each line the
# server read, "ID smtp disconnected reason=..." at the end of a session).
# Credentials (AUTH arguments, answers to 334 challenges) are masked
# by an awk filter before they reach the file.
#
# Port 2525: a builtin filter rejects EHLO with "502 5.5.2" (HELO works).
# Mail to any address at example.org goes (virtual table, user nobody)
# through mail.maildir into the Maildir DIR/mail/Maildir.

_SRV_OS_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=../lib/wait.sh
declare -F poll >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/../lib/wait.sh"

_srv_os_err() { echo "srv_opensmtpd: $*" >&2; }

_srv_os_all_banners() {
	local a p
	for a in 192.0.2.25 2001:db8::25; do
		for p in 25 2525; do
			smtp_banner "$1" "$a" "$p" || return 1
		done
	done
}

# _srv_os_free_id FILE START: first numeric id >= START unused in FILE
# (field 3, passwd or group format).
_srv_os_free_id() {
	awk -F: -v n="$2" '{u[$3] = 1} END {while (n in u) n++; print n}' "$1"
}

_srv_os_write_files() {
	local d=$1 r=$INTEROP_ROOT uid gid hash awk=gawk
	# mawk block-buffers a pipe's input unless told otherwise.
	command -v mawk >/dev/null && awk="mawk -W interactive"
	mkdir -p "$d/tls" "$d/etc" "$d/ovl/up" "$d/ovl/work" "$d/run" \
		"$d/mail" || return 1
	chmod 755 "$d" || return 1
	chown nobody: "$d/mail" || return 1

	# RSA: OpenSMTPD's privsep only knows 1024/2048/4096/8192-bit RSA.
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
		-subj /CN=mx.interop.test -keyout "$d/tls/key.pem" \
		-out "$d/tls/cert.pem" >/dev/null 2>&1 ||
		{ _srv_os_err "openssl req failed"; return 1; }
	chmod 600 "$d/tls/key.pem"

	cp /etc/passwd "$d/etc/passwd" && cp /etc/group "$d/etc/group" ||
		return 1
	if ! grep -q '^opensmtpd:' "$d/etc/passwd"; then
		uid=$(_srv_os_free_id "$d/etc/passwd" 64100)
		gid=$(_srv_os_free_id "$d/etc/group" 64100)
		echo "opensmtpd:x:$gid:" >>"$d/etc/group"
		echo "opensmtpd:x:$uid:$gid:OpenSMTPD:/var/lib/opensmtpd/empty:/usr/sbin/nologin" >>"$d/etc/passwd"
	fi
	if ! grep -q '^opensmtpq:' "$d/etc/passwd"; then
		uid=$(_srv_os_free_id "$d/etc/passwd" 64100)
		gid=$(_srv_os_free_id "$d/etc/group" 64100)
		echo "opensmtpq:x:$gid:" >>"$d/etc/group"
		echo "opensmtpq:x:$uid:$gid:OpenSMTPD queue:/var/lib/opensmtpd/empty:/usr/sbin/nologin" >>"$d/etc/passwd"
	fi
	echo "nameserver 127.0.0.1" >"$d/etc/resolv.conf"

	# Credentials table: crypt(3) hash made by OpenSMTPD's own helper
	# (what "smtpctl encrypt" runs).
	hash=$("$r/usr/libexec/opensmtpd/encrypt" interop-secret)
	if [[ $hash != '$'* ]]; then
		_srv_os_err "encrypt failed"
		return 1
	fi
	printf 'alice@example.org %s\n' "$hash" >"$d/etc/creds" &&
		chmod 600 "$d/etc/creds" || return 1

	# OpenSSL 3 shim (see the top of this file).  No headers needed.
	cat >"$d/ossl3fix.c" <<-'EOF'
	#define _GNU_SOURCE
	#include <dlfcn.h>
	typedef struct evp_pkey_st EVP_PKEY;
	typedef struct rsa_st RSA;
	typedef struct ec_key_st EC_KEY;
	int EVP_PKEY_set1_RSA(EVP_PKEY *, RSA *);
	int EVP_PKEY_set1_EC_KEY(EVP_PKEY *, EC_KEY *);
	RSA *EVP_PKEY_get1_RSA(EVP_PKEY *pkey)
	{
		static RSA *(*real)(EVP_PKEY *);
		RSA *r;
		if (!real)
			real = (RSA *(*)(EVP_PKEY *))dlsym(RTLD_NEXT, "EVP_PKEY_get1_RSA");
		if ((r = real(pkey)) != 0)
			EVP_PKEY_set1_RSA(pkey, r);
		return r;
	}
	EC_KEY *EVP_PKEY_get1_EC_KEY(EVP_PKEY *pkey)
	{
		static EC_KEY *(*real)(EVP_PKEY *);
		EC_KEY *k;
		if (!real)
			real = (EC_KEY *(*)(EVP_PKEY *))dlsym(RTLD_NEXT, "EVP_PKEY_get1_EC_KEY");
		if ((k = real(pkey)) != 0)
			EVP_PKEY_set1_EC_KEY(pkey, k);
		return k;
	}
	EOF
	gcc -shared -fPIC -O2 -o "$d/ossl3fix.so" "$d/ossl3fix.c" ||
		{ _srv_os_err "cannot compile the OpenSSL 3 shim"; return 1; }

	cat >"$d/smtpd.conf" <<-EOF
	# Generated by tests/interop/srv_opensmtpd.sh
	pki mx.interop.test cert "$d/tls/cert.pem"
	pki mx.interop.test key "$d/tls/key.pem"
	table creds file:$d/etc/creds
	table vusers { "@example.org" = "nobody" }
	table anysrc { "0.0.0.0/0", "::/0" }
	# Port 2525: EHLO refused (every source matches), HELO accepted.
	filter noehlo phase ehlo match src <anysrc> reject "502 5.5.2 EHLO not accepted here, use HELO"
	listen on 0.0.0.0 port 25 tls pki mx.interop.test hostname mx.interop.test auth-optional <creds>
	listen on :: port 25 tls pki mx.interop.test hostname mx.interop.test auth-optional <creds>
	listen on 0.0.0.0 port 2525 tls pki mx.interop.test hostname mx.interop.test auth-optional <creds> filter noehlo
	listen on :: port 2525 tls pki mx.interop.test hostname mx.interop.test auth-optional <creds> filter noehlo
	action "inbox" maildir "$d/mail/Maildir" virtual <vusers>
	match from any for domain "example.org" action "inbox"
	EOF

	# Runs as the namespace's first process: mounts, then exec smtpd
	# (same pid as the one ip netns exec started).
	cat >"$d/run.sh" <<-EOF
	#!/bin/bash
	set -e
	mount -t overlay interop-var -o lowerdir=/var,upperdir=$d/ovl/up,workdir=$d/ovl/work /var
	mount --bind $d/run /run
	mount -t overlay interop-libexec -o ro,lowerdir=$r/usr/libexec:/usr/libexec /usr/libexec
	for f in passwd group resolv.conf; do mount --bind $d/etc/\$f /etc/\$f; done
	mkdir -p /var/lib/opensmtpd/empty
	chmod 755 /var/lib/opensmtpd /var/lib/opensmtpd/empty
	# The log filter must not be a child of smtpd (whose parent, on
	# SIGTERM, waits for every child): orphaned, it reads a FIFO.
	rm -f $d/log.fifo; mkfifo -m 600 $d/log.fifo
	( $awk -f $d/mask.awk <$d/log.fifo >>$d/smtpd.log &
	  echo \$! >$d/filter.pid )
	export LD_PRELOAD=$d/ossl3fix.so
	exec $r/usr/sbin/smtpd -d -f $d/smtpd.conf -T smtp >$d/log.fifo 2>&1
	EOF
	chmod 755 "$d/run.sh"

	# Log filter: no credentials in the log (AUTH arguments, and the
	# line a client sends after each "334" challenge).
	cat >"$d/mask.awk" <<-'EOF'
	$1 == "smtp:" && $3 == ">>>" && $4 ~ /^334/ { chal[$2] = 1 }
	$1 == "smtp:" && $3 == "<<<" {
		if (chal[$2]) { delete chal[$2]; $0 = $1 " " $2 " <<< [masked]" }
		else if (toupper($4) == "AUTH" && NF > 5) $0 = $1 " " $2 " <<< " $4 " " $5 " [masked]"
	}
	{ print; fflush() }
	EOF
}

srv_opensmtpd_start() {
	local ns=${1:?NS} d=${2:?DIR} pid
	# shellcheck disable=SC1091 # pkgs.sh, next to this file
	source "$_SRV_OS_LIBDIR/pkgs.sh" || return 1
	interop_unpack opensmtpd || { _srv_os_err "cannot unpack opensmtpd"; return 1; }
	command -v gcc >/dev/null || { _srv_os_err "gcc missing"; return 1; }
	mkdir -p "$d" || return 1
	_srv_os_write_files "$d" || return 1
	"$INTEROP_ROOT/usr/sbin/smtpd" -n -f "$d/smtpd.conf" >"$d/configtest.log" 2>&1 ||
		{ _srv_os_err "config test failed: $(tail -n1 "$d/configtest.log")"; return 1; }
	: >"$d/smtpd.log"
	ip netns exec "$ns" unshare -m --propagation private "$d/run.sh" \
		</dev/null >>"$d/start.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/smtpd.pid"
	if ! poll 10 _srv_os_all_banners "$ns"; then
		_srv_os_err "no 220 on *:25/*:2525 within 10 s: $(tail -n1 "$d/smtpd.log" "$d/start.log" 2>/dev/null | tr '\n' ' ')"
		srv_opensmtpd_stop "$ns" "$d"
		return 1
	fi
	return 0
}

# _srv_os_gone PID...: true once none of the processes exists (zombies
# waiting for init to reap them count as gone).
_srv_os_gone() {
	local p st
	for p in "$@"; do
		st=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) || continue
		[ "$st" = Z ] || return 1
	done
	return 0
}

srv_opensmtpd_stop() {
	local d=${2:?DIR} pid kids
	[ -s "$d/smtpd.pid" ] || return 0
	pid=$(cat "$d/smtpd.pid")
	# The parent smtpd and its children (klondike, control, lookup, pony,
	# queue, scheduler): TERM to all at once (the parent alone takes 1-2 s
	# to shut them down); the log filter ends at EOF.
	kids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')
	# shellcheck disable=SC2086
	kill -TERM "$pid" $kids 2>/dev/null
	[ -s "$d/filter.pid" ] && kids="$kids $(cat "$d/filter.pid")"
	# shellcheck disable=SC2086
	if ! poll 5 _srv_os_gone "$pid" $kids; then
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null
		# shellcheck disable=SC2086
		poll 2 _srv_os_gone "$pid" $kids ||
			{ _srv_os_err "smtpd $pid would not stop"; return 1; }
	fi
	wait "$pid" 2>/dev/null
	rm -f "$d/smtpd.pid" "$d/filter.pid"
	return 0
}

srv_opensmtpd_mark() {
	local d=${1:?DIR}
	stat -c %s "$d/smtpd.log" >"$d/mark" 2>/dev/null ||
		{ _srv_os_err "no log in $d"; return 1; }
}

_srv_os_since_mark() {
	local m=0
	[ -s "$1/mark" ] && m=$(cat "$1/mark")
	tail -c "+$((m + 1))" "$1/smtpd.log"
}

# _srv_os_find DIR TOKEN: print the Maildir file holding TOKEN.
_srv_os_find() {
	local f
	f=$(grep -rlF -- "$2" "$1/mail/Maildir/new" "$1/mail/Maildir/cur" 2>/dev/null | head -n1)
	[ -n "$f" ] && echo "$f"
}

srv_opensmtpd_delivered() {
	local d=${1:?DIR} tok=${2:?TOKEN} t=${3:-10}
	poll "$t" _srv_os_find "$d" "$tok" >/dev/null && return 0
	_srv_os_err "no message with $tok in $d/mail/Maildir after ${t}s"
	return 1
}

# 0 if the message's own (topmost) Received: header, prepended by smtpd,
# says it came over TLS: "with ESMTPS"/"ESMTPSA" plus "(TLSv1.3:CIPHER:...)".
srv_opensmtpd_delivered_tls() {
	local d=${1:?DIR} tok=${2:?TOKEN} f rcvd
	f=$(_srv_os_find "$d" "$tok") ||
		{ _srv_os_err "no message with $tok"; return 2; }
	rcvd=$(awk '/^$/ {exit} /^Received:/ {n++; if (n > 1) exit; r = 1; print; next}
		/^[ \t]/ {if (r) print; next} {if (r) exit}' "$f")
	[ -n "$rcvd" ] || { _srv_os_err "no Received: header in $f"; return 2; }
	grep -qE 'with [A-Z]*SMTPSA? |\(TLSv[0-9.]+:' <<<"$rcvd"
}

# _srv_os_scan DIR: 0 = a network session ended and MAIL was seen,
# 1 = ended without MAIL, 2 = no end yet.  Sessions of the local
# enqueuer (bounces: listener port=0, "address=local") are ignored.
_srv_os_scan() {
	_srv_os_since_mark "$1" | awk '
		/^smtp: 0x[0-9a-f]+: connected to listener / {
			p = $2; sub(/:$/, "", p)
			loc[p] = ($0 ~ /port=0,/) ? 1 : 0; next }
		/^[0-9a-f]+ smtp connected address=local / { lid[$1] = 1; next }
		/^[0-9a-f]+ smtp disconnected / { if (!($1 in lid)) ended = 1; next }
		/^smtp: 0x[0-9a-f]+: <<< / {
			p = $2; sub(/:$/, "", p)
			if (toupper($4) ~ /^MAIL/ && !loc[p]) mail = 1 }
		END { if (!ended) exit 2; exit mail ? 0 : 1 }'
}

srv_opensmtpd_saw_mail() {
	local d=${1:?DIR} t=${2:-5} rc
	poll "$t" _srv_os_ended "$d"
	_srv_os_scan "$d"
	rc=$?
	[ "$rc" = 2 ] && _srv_os_err "no end of session logged within ${t}s"
	return "$rc"
}

_srv_os_ended() { _srv_os_scan "$1"; [ $? != 2 ]; }
