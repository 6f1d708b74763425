# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
#
# tests/lib/postfix.sh - what the private Postfix instances of the tests
# (the namespace lab, the interop server and sending MTA) have in common.

# postfix_master_cf [LINE...]: a master.cf with Postfix's internal services,
# no chroot anywhere and no postscreen, then the LINEs (the instance's own
# listeners and transports).
postfix_master_cf() {
	cat <<-'EOF'
	pickup    unix  n - n 60 1 pickup
	cleanup   unix  n - n - 0 cleanup
	qmgr      unix  n - n 300 1 qmgr
	tlsmgr    unix  - - n 1000? 1 tlsmgr
	rewrite   unix  - - n - - trivial-rewrite
	bounce    unix  - - n - 0 bounce
	defer     unix  - - n - 0 bounce
	trace     unix  - - n - 0 bounce
	verify    unix  - - n - 1 verify
	flush     unix  n - n 1000? 0 flush
	proxymap  unix  - - n - - proxymap
	showq     unix  n - n - - showq
	smtp      unix  - - n - - smtp
	error     unix  - - n - - error
	retry     unix  - - n - - error
	discard   unix  - - n - - discard
	local     unix  - n n - - local
	virtual   unix  - n n - - virtual
	anvil     unix  - - n - 1 anvil
	scache    unix  - - n - 1 scache
	postlog   unix-dgram n - n - 1 postlogd
	EOF
	printf '%s\n' "$@"
}
