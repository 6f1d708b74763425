/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Feeding segments to the protocol logic (include/smtp.h) on the host, as
 * the BPF program does: the reference that the host tests check and the
 * packet tests compare the program with. */
#ifndef STG_TEST_FEED_H
#define STG_TEST_FEED_H

#include <stddef.h>
#include "smtp.h"

struct fed {
	int verdict;		/* enum smtp_verdict */
	size_t at;		/* offset of the violation in the segment */
	int ev;			/* SMTP_EV_* */
};

/* One client segment, as the client scan programs do it */
static inline struct fed feed_client(struct smtp_state *s,
				     const struct smtp_upgrade *up,
				     const char *p, size_t n)
{
	struct fed r = { 0 };
	size_t i;

	for (i = 0; i < n && !smtp_done(s, 1); i++) {
		r.verdict = smtp_client_feed(s, (__u8)p[i], up);
		if (r.verdict) {
			r.verdict = smtp_client_name(s, r.verdict);
			r.at = i;
			return r;
		}
	}
	r.verdict = smtp_client_name(s, smtp_client_end(s, up));
	r.at = n;
	return r;
}

/* One server segment, as stg_check and the server scan program do it */
static inline struct fed feed_server(struct smtp_state *s, const char *p,
				     size_t n)
{
	struct fed r = { 0 };
	size_t i;

	if (n && s->phase == STG_TLS_HELLO) {
		r.verdict = smtp_server_answer(s, (__u8)p[0], &r.ev);
		if (r.verdict)
			return r;
	}
	for (i = 0; i < n && !smtp_done(s, 0); i++) {
		r.verdict = smtp_server_byte(s, (__u8)p[i], &r.ev);
		if (r.verdict) {
			r.at = i;
			return r;
		}
	}
	return r;
}

#endif /* STG_TEST_FEED_H */
