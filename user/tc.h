/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Attaching the guard's programs to an interface: TCX links where the
 * kernel has them (6.6+), cls_bpf under clsact elsewhere. */
#ifndef STG_TC_H
#define STG_TC_H

#include <stdbool.h>
#include "starttls_guard.h"

extern const char *stg_pin_dir; /* see starttls-guard.c */

enum stg_tc_want {
	STG_WANT_AUTO = 0,	/* TCX, else clsact */
	STG_WANT_TCX,
	STG_WANT_CLSACT,
};

/*
 * Attach (or atomically replace) @prog_in and @prog_eg on interface @k
 * (of the current network namespace).
 * @cur: what is attached there now (NULL if nothing); @out: what is
 * attached after. Returns 0 or -errno, having undone its own half-done
 * work and printed one line saying what failed.
 */
int stg_tc_attach(const struct stg_iface_key *k, const char *ifname, int prog_in, int prog_eg,
		  enum stg_tc_want want, const struct stg_iface *cur,
		  struct stg_iface *out);

/* Remove what stg_tc_attach() made on @k (clsact filters only from the
 * current network namespace). Returns 0 or -errno. */
int stg_tc_detach(const struct stg_iface_key *k, const struct stg_iface *cur);

/* What runs before the guard on a hook of @k (of the current network
 * namespace) and so may pass traffic it never sees: TCX programs ahead,
 * other clsact filters at its priority or higher. Described in @buf;
 * returns how many. */
int stg_tc_ahead(const struct stg_iface_key *k, const struct stg_iface *cur,
		 bool ingress, char *buf, size_t len);

/* Path of the pinned TCX link of @k for ingress or egress. */
void stg_tc_link_path(char *buf, size_t len, const struct stg_iface_key *k,
		      bool ingress);

#endif /* STG_TC_H */
