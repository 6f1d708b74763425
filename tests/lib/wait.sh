# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
#
# tests/lib/wait.sh - waiting for servers and files, for the test scripts
# (the namespace lab and the interop servers and clients).

# poll TIMEOUT_S CMD...: run CMD every 50 ms until it succeeds or
# TIMEOUT_S (may be fractional) elapses. Returns CMD's last status.
poll() {
	local int=${1%.*} frac=0 deadline
	[[ $1 == *.* ]] && { frac=${1#*.}000000; frac=$((10#${frac:0:6})); }
	# EPOCHREALTIME in microseconds (strip the locale's decimal separator).
	deadline=$((${EPOCHREALTIME//[^0-9]/} + 10#${int:-0} * 1000000 + frac))
	shift
	while :; do
		"$@" && return 0
		((${EPOCHREALTIME//[^0-9]/} >= deadline)) && { "$@"; return; }
		sleep 0.05
	done
}

# smtp_banner NS ADDR PORT: true once a 220 banner is read from ADDR:PORT.
# Runs inside NS, so a probe session comes from the server's own address
# and never mixes with the log lines of a client's.
smtp_banner() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "$1" timeout 2 bash -c \
		'exec 3<>"/dev/tcp/$1/$2" && read -r -t 2 l <&3 && [[ $l == 220* ]] &&
		 printf "QUIT\r\n" >&3 && read -r -t 2 l <&3' _ "$2" "$3" 2>/dev/null
}

# capturing PID: true once process PID (tcpdump) holds a socket, that is,
# once it captures.
capturing() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | grep -q .; }
