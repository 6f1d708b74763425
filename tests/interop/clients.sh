# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
#
# tests/interop/clients.sh - real SMTP clients for the interop matrix.
#
#     source tests/interop/clients.sh
#     cli_swaks NS MODE ADDR PORT TOKEN WORKDIR
#
# One function per client KIND (see CLI_KINDS), all with the same
# arguments: NS (client network namespace), MODE (tls = STARTTLS then send;
# plain = never STARTTLS, send in plaintext), ADDR (192.0.2.25 or
# 2001:db8::25, an IPv6 literal without brackets), PORT, TOKEN (a word put
# in the Subject and the body) and WORKDIR (a private directory for the
# message file, configuration and the transcript WORKDIR/KIND.out).
# Each sends one message From alice@example.org To bob@example.org.
#
# Return codes (same for every KIND):
#   0    the client says the message was accepted (250 after the data)
#   1    not accepted: refused, protocol error, connection reset/closed,
#        connect failed (one line on stderr says why)
#   2    not applicable: this client cannot do MODE (e.g. openssl s_client
#        has no plaintext SMTP mode); nothing was sent, or the client could
#        not even attempt what the KIND is about (swaks_auth plain: swaks
#        never sends AUTH unless the server advertises it)
#   124  timed out (killed after CLI_TIMEOUT s): the client hung
# Quiet on success; on failure one line on stderr, "cli_KIND: reason".
# Safe under "set -u", no reliance on "set -e".
#
# HELO fallback (server port 2525 answers EHLO with "502 5.5.2"), measured
# against aiosmtpd 1.4.3 (IPv4 and IPv6, checked on the wire with tcpdump):
#   KIND          plain mode                      tls mode
#   swaks         EHLO 502, HELO, MAIL.. accepted "Host did not advertise
#                 (protocol ESMTP = EHLO->HELO)   STARTTLS", exit 29, no MAIL
#   swaks_pipe    same (--pipeline is dropped     same
#                 silently without PIPELINING)
#   swaks_auth    HELO, then 2 (no AUTH offered)  exit 29, no MAIL
#   openssl       n/a (2)                         s_client sends STARTTLS
#                                                 anyway ("Didn't find
#                                                 STARTTLS"); if the server
#                                                 agrees (aiosmtpd does), our
#                                                 dialogue does EHLO, HELO
#                                                 inside TLS: accepted
#   gnutls        our dialogue: HELO, MAIL..      gnutls-cli waits for "250 "
#                 accepted                        until its own 10 s timeout,
#                                                 then fails: SLOW (10 s)
#   msmtp         HELO, MAIL.. accepted           "server does not support
#                                                 TLS via STARTTLS", no MAIL
#   curl          HELO, MAIL.. accepted           "(9) Remote access denied:
#                                                 502", no HELO, no MAIL
#   smtplib       HELO, MAIL.. accepted           SMTPNotSupportedError, no MAIL
#   nodemailer    HELO, MAIL.. accepted           "EHLO failed but HELO does
#                                                 not support required
#                                                 STARTTLS", no MAIL
# cli_helo_fallback KIND answers 0 for the KINDs whose plain mode falls
# back to HELO and then sends MAIL (all but swaks_auth and openssl).
#
# Connection reset (TCP RST) right after MAIL FROM in plaintext (and right
# after STARTTLS, and after a plaintext AUTH): every KIND returns 1 within
# 0.2 s (message "Connection reset by peer" or "closed unexpectedly").
# A server that never answers: curl and nodemailer give up after 10 s,
# msmtp and smtplib after 15 s, swaks, openssl, gnutls are killed at
# CLI_TIMEOUT (124).
#
# Wire behaviour worth knowing: swaks_pipe and nodemailer send MAIL, RCPT
# and DATA in one segment when PIPELINING is offered (nodemailer pipelines
# without being asked); the others send one command per segment.  In plain
# mode none of them sends STARTTLS (curl without --ssl, nodemailer with
# ignoreTLS, msmtp with tls off), even though port 25 offers it.

CLI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The KINDs of the matrix, and extra ones that force a plaintext AUTH.
CLI_KINDS="swaks swaks_pipe swaks_auth openssl gnutls msmtp curl smtplib nodemailer"
CLI_KINDS_EXTRA="smtplib_auth nodemailer_auth"
CLI_TIMEOUT=${CLI_TIMEOUT:-20}
CLI_FROM=alice@example.org
CLI_TO=bob@example.org
CLI_HELO=client.example.org
# smtplib is in the standard library: any python3 will do; prefer Debian's
# (a pyenv shim costs ~50 ms per start).
if [[ -x /usr/bin/python3 ]]; then CLI_PYTHON=/usr/bin/python3; else CLI_PYTHON=python3; fi
export CLI_DIR CLI_KINDS CLI_KINDS_EXTRA CLI_TIMEOUT CLI_PYTHON

_cli_err() { echo "cli_$1: ${*:2}" >&2; }

# _cli_args KIND NS MODE ADDR PORT TOKEN WORKDIR: validate the arguments.
_cli_args() {
	if (( $# != 7 )); then
		_cli_err "$1" "usage: cli_$1 NS MODE ADDR PORT TOKEN WORKDIR"; return 1
	fi
	case $3 in tls|plain) ;; *) _cli_err "$1" "MODE must be tls or plain, not '$3'"; return 1;; esac
	[[ $5 =~ ^[0-9]+$ ]] || { _cli_err "$1" "bad port '$5'"; return 1; }
	[[ $6 =~ ^[A-Za-z0-9._-]+$ ]] || { _cli_err "$1" "TOKEN must be a word, not '$6'"; return 1; }
	mkdir -p "$7" || { _cli_err "$1" "cannot create $7"; return 1; }
}

# _cli_msg KIND TOKEN FILE: the message (CRLF line ends) into FILE.
_cli_msg() {
	printf '%s\r\n' \
		"From: <$CLI_FROM>" \
		"To: <$CLI_TO>" \
		"Subject: interop $1 $2" \
		"Date: $(LC_ALL=C date -R)" \
		"Message-ID: <$2.$1@example.org>" \
		"MIME-Version: 1.0" \
		"Content-Type: text/plain; charset=us-ascii" \
		"" \
		"interop test message $2 sent by $1" >"$3"
}

# _cli_run NS OUT CMD...: CMD in namespace NS, killed after CLI_TIMEOUT s;
# stdout and stderr into OUT.  Returns CMD's status (124 = timed out).
_cli_run() {
	local ns=$1 out=$2
	shift 2
	ip netns exec "$ns" timeout -k 2 "$CLI_TIMEOUT" "$@" >"$out" 2>&1
}

# _cli_fail KIND RC OUT [ERE [NOT-ERE]]: map a client's exit status to ours
# and print the reason: the last line of OUT matching ERE but not NOT-ERE
# (else the last non-empty line), with AUTH arguments blanked.  Returns 124
# for a timeout, else 1.
_cli_fail() {
	local kind=$1 rc=$2 out=$3 ere=${4:-.} not=${5:-^$} line
	if (( rc == 124 || rc == 137 )); then
		_cli_err "$kind" "timed out after ${CLI_TIMEOUT}s (transcript $out)"
		return 124
	fi
	line=$(tr -d '\r' <"$out" 2>/dev/null | grep -E -- "$ere" | grep -Ev -- "$not" | grep -v '^[[:space:]]*$' | tail -n1)
	[[ -z $line ]] && line=$(tr -d '\r' <"$out" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -n1)
	line=$(sed -E 's/(AUTH[[:space:]]+[A-Za-z0-9-]+)[[:space:]].*/\1 [hidden]/I' <<<"$line")
	_cli_err "$kind" "exit $rc: ${line:0:200}"
	return 1
}

# _cli_name ADDR: the server's host name for ADDR when CLI_NAMES maps it
# ("ADDR=NAME ...", names the namespace's hosts file resolves), else ADDR.
# For the clients that put the name they connect to in the SNI extension
# (msmtp) or in their own EHLO (gnutls-cli): an address literal is not
# allowed in SNI (RFC 6066), and "EHLO 2001:db8::25" is not RFC 5321
# syntax; Exim refuses both (OpenSMTPD the second), as it should.
_cli_name() {
	local m
	for m in ${CLI_NAMES:-}; do
		[[ ${m%%=*} == "$1" ]] && { echo "${m#*=}"; return; }
	done
	echo "$1"
}

# _cli_host ADDR: ADDR, with brackets if it is an IPv6 literal.
_cli_host() { if [[ $1 == *:* ]]; then echo "[$1]"; else echo "$1"; fi; }

# --- swaks --------------------------------------------------------------------
# Swaks falls back from EHLO to HELO by itself (protocol ESMTP = EHLO->HELO).
# It does not verify the server certificate (this version has no
# --tls-verify). Exit codes: 2 connect, 22 HELO, 23 MAIL, 28 AUTH, 29 TLS.

_cli_swaks() { # KIND NS MODE ADDR PORT TOKEN WORKDIR [SWAKS-ARGS...]
	local kind=$1 ns=$2 mode=$3 addr=$4 port=$5 tok=$6 wd=$7 fam=-4 rc out
	shift 7
	[[ $addr == *:* ]] && fam=-6
	out=$wd/$kind.out
	local args=(--server "$addr" --port "$port" "$fam" --timeout 15
		--helo "$CLI_HELO" --from "$CLI_FROM" --to "$CLI_TO"
		--header "Subject: interop $kind $tok"
		--header "Message-ID: <$tok.$kind@example.org>"
		--body "interop test message $tok sent by $kind" "$@")
	[[ $mode == tls ]] && args+=(--tls)
	_cli_run "$ns" "$out" swaks "${args[@]}"
	rc=$?
	(( rc == 0 )) && return 0
	if [[ $kind == swaks_auth && $mode == plain ]] &&
	   grep -q 'Host did not advertise authentication' "$out"; then
		_cli_err "$kind" "n/a: the server offers no AUTH without TLS and swaks cannot force it"
		return 2
	fi
	_cli_fail "$kind" "$rc" "$out" '^(\*\*\*|<\*\*)'
}

cli_swaks() { _cli_args swaks "$@" || return 1; _cli_swaks swaks "$@"; }
cli_swaks_pipe() { _cli_args swaks_pipe "$@" || return 1; _cli_swaks swaks_pipe "$@" --pipeline; }
# AUTH PLAIN. In plain mode swaks sends AUTH without TLS only if the server
# advertises AUTH there; there is no option to force it (see the 2 above).
cli_swaks_auth() {
	_cli_args swaks_auth "$@" || return 1
	_cli_swaks swaks_auth "$@" --auth PLAIN --auth-user alice@example.org \
		--auth-password interop-secret --auth-hide-password
}

# --- openssl s_client / gnutls-cli: a scripted SMTP dialogue ---------------
# The TLS tool does EHLO + STARTTLS + handshake itself; then our dialogue
# (EHLO, MAIL, RCPT, DATA, message, QUIT) goes through it, each command
# sent only once the previous reply has been read.

# _cli_reply RFD LOG: read one reply (all lines of a multi-line one) from
# RFD; sets _CLI_CODE and _CLI_LINE (its last line).  Lines that are not
# SMTP replies (tool chatter) are skipped.  1 on EOF or timeout.
_cli_reply() {
	local line
	_CLI_CODE='' _CLI_LINE="(connection closed)"
	while IFS= read -r -t "$CLI_TIMEOUT" -u "$1" line; do
		line=${line%$'\r'}
		printf 'S: %s\n' "$line" >>"$2"
		[[ $line =~ ^([0-9]{3})([\ -]|$) ]] || continue
		_CLI_LINE=$line
		[[ ${BASH_REMATCH[2]} == - ]] && continue
		_CLI_CODE=${BASH_REMATCH[1]}
		return 0
	done
	return 1
}

# _cli_cmd WFD RFD LOG LINE: send LINE (CRLF), read the reply.  An empty
# LINE sends nothing (reads the banner).  A LINE "@FILE" sends the
# message in FILE and the final dot.
_cli_cmd() {
	local ok=0
	if [[ $4 == @* ]]; then
		printf 'C: (message)\n' >>"$3"
		{ cat "${4#@}" && printf '.\r\n'; } 1>&"$1" 2>/dev/null || ok=1
	elif [[ -n $4 ]]; then
		printf 'C: %s\n' "$4" >>"$3"
		printf '%s\r\n' "$4" 1>&"$1" 2>/dev/null || ok=1
	fi
	if (( ok != 0 )); then
		_CLI_CODE='' _CLI_LINE="(write failed: connection closed)"
		return 1
	fi
	_cli_reply "$2" "$3"
}

# _cli_expect KIND STEP ERE WFD RFD LOG LINE: _cli_cmd, then the reply code
# must match ERE; otherwise "cli_KIND: STEP: reply" on stderr, 1.
_cli_expect() {
	if _cli_cmd "$4" "$5" "$6" "$7" && [[ $_CLI_CODE =~ ^($3)$ ]]; then
		return 0
	fi
	_cli_err "$1" "$2: ${_CLI_LINE:0:200}"
	return 1
}

# _cli_dialogue MODE TOKEN KIND WFD RFD LOG: returns 0 if the message was
# accepted; otherwise prints the failing step to stderr.
_cli_dialogue() {
	local mode=$1 kind=$3 io=("$4" "$5" "$6")
	if [[ $mode == plain ]]; then
		_cli_expect "$kind" banner 220 "${io[@]}" "" || return 1
	fi
	# EHLO refused (5xx): fall back to HELO, like an MTA would.  In tls
	# mode this is already inside TLS (openssl sends STARTTLS even after
	# a refused EHLO).
	_cli_expect "$kind" EHLO '250|5..' "${io[@]}" "EHLO $CLI_HELO" || return 1
	if [[ $_CLI_CODE == 5* ]]; then
		_cli_expect "$kind" HELO 250 "${io[@]}" "HELO $CLI_HELO" || return 1
	fi
	_cli_expect "$kind" MAIL 250 "${io[@]}" "MAIL FROM:<$CLI_FROM>" &&
	_cli_expect "$kind" RCPT '250|251' "${io[@]}" "RCPT TO:<$CLI_TO>" &&
	_cli_expect "$kind" DATA 354 "${io[@]}" "DATA" &&
	_cli_expect "$kind" "end of data" 250 "${io[@]}" "@$(dirname "$6")/$kind.msg" ||
		return 1
	_cli_cmd "${io[@]}" QUIT   # its answer does not matter
	return 0
}

# _cli_tlstool KIND NS MODE TOKEN WORKDIR TOOL...: run TOOL as a coprocess
# in NS and speak SMTP through it.  A subshell: a write to a dead tool
# cannot SIGPIPE the caller, and the coprocess stays private.
_cli_tlstool() (
	kind=$1 ns=$2 mode=$3 tok=$4 wd=$5
	shift 5
	log=$wd/$kind.out
	: >"$log"
	_cli_msg "$kind" "$tok" "$wd/$kind.msg" || exit 1
	trap '' PIPE
	coproc CLI_CO { exec ip netns exec "$ns" timeout -k 2 "$CLI_TIMEOUT" "$@" 2>"$wd/$kind.err"; }
	pid=$CLI_CO_PID
	# Duplicate the coprocess fds: bash closes CLI_CO's when it exits.
	exec {r}<&"${CLI_CO[0]}" {w}>&"${CLI_CO[1]}"
	_cli_dialogue "$mode" "$tok" "$kind" "$w" "$r" "$log" 2>"$wd/$kind.why"
	rc=$?
	# After a refusal the session is still open: end it politely.
	(( rc != 0 )) && printf 'QUIT\r\n' 1>&"$w" 2>/dev/null
	# Closing its stdin ends the tool (the server closed after QUIT
	# anyway); if it does not end at once, stop it (our own child).
	exec {w}>&-
	while IFS= read -r -t 2 -u "$r" line; do printf 'S: %s\n' "${line%$'\r'}" >>"$log"; done
	kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	trc=$?
	exec {r}<&-
	cat "$wd/$kind.err" >>"$log" 2>/dev/null
	if (( rc != 0 && trc == 124 )); then
		_cli_err "$kind" "timed out after ${CLI_TIMEOUT}s"; exit 124
	fi
	why=$(<"$wd/$kind.why")
	if [[ $why == *"(connection closed)"* || $why == *"(write failed"* ]]; then
		# The tool's own last words say more (e.g. "error receiving '220 ':
		# Connection reset by peer"); not its certificate chatter.
		tool=$(grep -Ev '^(depth=|verify (error|return))|SSL_get_servername' \
			"$wd/$kind.err" 2>/dev/null | tail -n1)
		[[ -n $tool ]] && why+=" ($1: ${tool:0:120})"
	fi
	[[ -n $why ]] && echo "$why" >&2
	exit "$rc"
)

# openssl s_client: -starttls smtp sends its own EHLO and STARTTLS, then the
# handshake (certificate not verified: s_client only reports it).  -quiet
# implies -ign_eof, which also disables the interactive commands that a
# line starting with "R" (RCPT!) or "Q" would otherwise trigger.
# No plaintext mode: plain -> 2.
cli_openssl() {
	_cli_args openssl "$@" || return 1
	local ns=$1 mode=$2 addr=$3 port=$4 tok=$5 wd=$6
	if [[ $mode == plain ]]; then
		_cli_err openssl "n/a: openssl s_client cannot speak plaintext SMTP"; return 2
	fi
	_cli_tlstool openssl "$ns" "$mode" "$tok" "$wd" \
		openssl s_client -starttls smtp -connect "$(_cli_host "$addr"):$port" \
		-servername mx.interop.test -quiet
}

# gnutls-cli: tls = --starttls-proto=smtp (EHLO, STARTTLS, handshake done by
# gnutls-cli, certificate not verified with --insecure).  plain = manual
# STARTTLS mode (--starttls): gnutls-cli relays plaintext until told to
# start TLS, which we never do; so plain is our own scripted dialogue
# over a plain TCP relay (EHLO, HELO if EHLO is refused, MAIL...): a
# hand-typed session rather than a TLS library's behaviour.
cli_gnutls() {
	_cli_args gnutls "$@" || return 1
	local ns=$1 mode=$2 addr=$3 port=$4 tok=$5 wd=$6 how
	if [[ $mode == tls ]]; then how=--starttls-proto=smtp; else how=--starttls; fi
	_cli_tlstool gnutls "$ns" "$mode" "$tok" "$wd" \
		gnutls-cli "$how" --insecure --logfile="$wd/gnutls.log" \
		--sni-hostname=mx.interop.test -p "$port" "$(_cli_name "$addr")"
}

# --- msmtp --------------------------------------------------------------------
# Falls back to HELO when EHLO is refused.  Exit codes are sysexits
# (69 unavailable, 75 temporary failure, 76 protocol error, ...).
cli_msmtp() {
	_cli_args msmtp "$@" || return 1
	local ns=$1 mode=$2 addr=$3 port=$4 tok=$5 wd=$6 rc tls=off
	[[ $mode == tls ]] && tls=on
	cat >"$wd/msmtprc" <<-EOF || return 1
	defaults
	account interop
	host $(_cli_name "$addr")
	port $port
	domain $CLI_HELO
	from $CLI_FROM
	auth off
	tls $tls
	tls_starttls on
	tls_certcheck off
	timeout 15
	syslog off
	logfile
	EOF
	chmod 600 "$wd/msmtprc"
	_cli_msg msmtp "$tok" "$wd/msmtp.msg" || return 1
	ip netns exec "$ns" timeout -k 2 "$CLI_TIMEOUT" \
		msmtp -C "$wd/msmtprc" -a interop -- "$CLI_TO" <"$wd/msmtp.msg" >"$wd/msmtp.out" 2>&1
	rc=$?
	(( rc == 0 )) && return 0
	_cli_fail msmtp "$rc" "$wd/msmtp.out" '^msmtp:' 'could not send mail'
}

# --- curl ---------------------------------------------------------------------
# tls = --ssl-reqd (STARTTLS or fail), -k; plain = no --ssl option at all:
# curl then never sends STARTTLS.  curl falls back to HELO when EHLO is
# refused (not with --ssl-reqd).  -q: no ~/.curlrc; -g: [IPv6] literal.
cli_curl() {
	_cli_args curl "$@" || return 1
	local ns=$1 mode=$2 addr=$3 port=$4 tok=$5 wd=$6 rc tlsargs=()
	[[ $mode == tls ]] && tlsargs=(--ssl-reqd -k)
	_cli_msg curl "$tok" "$wd/curl.msg" || return 1
	_cli_run "$ns" "$wd/curl.out" curl -q -g -sS -v --connect-timeout 10 \
		--max-time 18 "${tlsargs[@]}" \
		--mail-from "$CLI_FROM" --mail-rcpt "$CLI_TO" -T "$wd/curl.msg" \
		"smtp://$(_cli_host "$addr"):$port/$CLI_HELO"
	rc=$?
	(( rc == 0 )) && return 0
	_cli_fail curl "$rc" "$wd/curl.out" '^curl: \('
}

# --- Python smtplib -----------------------------------------------------------
_cli_py() { # KIND NS MODE ADDR PORT TOKEN WORKDIR [auth]
	local kind=$1 ns=$2 mode=$3 addr=$4 port=$5 tok=$6 wd=$7 rc
	_cli_run "$ns" "$wd/$kind.out" "$CLI_PYTHON" "$CLI_DIR/smtplib_client.py" \
		"$mode" "$addr" "$port" "$tok" ${8:+"$8"}
	rc=$?
	(( rc == 0 )) && return 0
	_cli_fail "$kind" "$rc" "$wd/$kind.out"
}
cli_smtplib() { _cli_args smtplib "$@" || return 1; _cli_py smtplib "$@"; }
# AUTH PLAIN alice@example.org, sent with docmd(): in plain mode it goes out
# in plaintext even though the server does not advertise AUTH there.
cli_smtplib_auth() { _cli_args smtplib_auth "$@" || return 1; _cli_py smtplib_auth "$@" auth; }

# --- Node.js nodemailer ---------------------------------------------------
# Needs "npm ci" in tests/interop (nodemailer pinned in package-lock.json).
_cli_node() { # KIND NS MODE ADDR PORT TOKEN WORKDIR [auth]
	local kind=$1 ns=$2 mode=$3 addr=$4 port=$5 tok=$6 wd=$7 rc
	if [[ ! -d $CLI_DIR/node_modules/nodemailer ]]; then
		_cli_err "$kind" "nodemailer missing: run npm ci in $CLI_DIR"; return 1
	fi
	_cli_run "$ns" "$wd/$kind.out" node "$CLI_DIR/nodemailer_client.js" \
		"$mode" "$addr" "$port" "$tok" ${8:+"$8"}
	rc=$?
	(( rc == 0 )) && return 0
	_cli_fail "$kind" "$rc" "$wd/$kind.out"
}
cli_nodemailer() { _cli_args nodemailer "$@" || return 1; _cli_node nodemailer "$@"; }
# AUTH PLAIN with forceAuth: in plain mode sent in plaintext, unadvertised.
cli_nodemailer_auth() { _cli_args nodemailer_auth "$@" || return 1; _cli_node nodemailer_auth "$@" auth; }

# cli_helo_fallback KIND: 0 if KIND in plain mode, when the server refuses
# EHLO (5xx), falls back to HELO and then sends MAIL/RCPT/DATA in
# plaintext (measured, see the table at the top); 1 if it gives up before
# MAIL; 2 if KIND has no plain mode.
cli_helo_fallback() {
	case $1 in
	swaks|swaks_pipe|gnutls|msmtp|curl|smtplib|nodemailer|smtplib_auth|nodemailer_auth) return 0;;
	swaks_auth) return 1;;
	openssl) return 2;;
	*) _cli_err helo_fallback "unknown KIND '$1'"; return 1;;
	esac
}
