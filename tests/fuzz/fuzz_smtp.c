// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the protocol logic (include/smtp.h): `make fuzz`.
 *
 * Input: a policy byte (bit 0 auth-only, bit 1 one-way, bit 2 an upgrade
 * verb X-ANONYMOUSTLS), then segments, each a header byte (bit 7: from
 * the server; bits 0-6: length) and its bytes. They are fed as the BPF
 * program feeds them (tests/feed.h), under ASan and UBSan, and checked:
 *  - the state stays within its bounds (line and verb lengths, phases,
 *    replies never ahead of commands);
 *  - cutting the client's segments into single bytes finds a violation
 *    no later, and under encrypt, when every client segment ends a line,
 *    in the same segment (a segment that ends inside a verb is judged by
 *    what it holds: under auth-only "AU" is one, "AUX" not);
 *  - a line whose verb the policy forbids never completes in plaintext
 *    without a violation (checked by a line model of its own).
 */
#include <linux/types.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"
#include "feed.h"

struct seg {
	int srv;
	const char *p;
	size_t n;
};

#define MAX_SEGS 256

static int parse(const uint8_t *d, size_t n, struct seg *segs, int *nsegs)
{
	size_t o = 1;

	*nsegs = 0;
	while (o < n && *nsegs < MAX_SEGS) {
		size_t len = d[o] & 0x7f;

		if (o + 1 + len > n)
			len = n - o - 1;
		segs[*nsegs].srv = d[o] >> 7;
		segs[*nsegs].p = (const char *)d + o + 1;
		segs[(*nsegs)++].n = len;
		o += 1 + len;
	}
	return 0;
}

static void init(struct smtp_state *s, struct smtp_upgrade *up, uint8_t pol)
{
	smtp_init(s, 0);
	s->policy = pol & (SMTP_P_AUTH_ONLY | SMTP_P_ONE_WAY);
	memset(up, 0, sizeof(*up));
	if (pol & 4)
		smtp_pack_verb("X-ANONYMOUSTLS", up->verb[0]);
}

static void bounds(const struct smtp_state *s)
{
	if (s->cli_len > SMTP_LINE_MAX || s->cli_pos > s->cli_len ||
	    s->phase > STG_TLS || s->body > SMTP_B_CR || s->bdat > 3 ||
	    (s->replies > s->cmds && !(s->srv_flags & SMTP_SF_PICKUP)))
		abort();
}

/* Which segment has the first violation (-1: none); @bytewise: client
 * segments fed one byte at a time. */
static int run(uint8_t pol, const struct seg *segs, int nsegs, int bytewise)
{
	struct smtp_state s;
	struct smtp_upgrade up;

	init(&s, &up, pol);
	for (int i = 0; i < nsegs; i++) {
		const struct seg *g = &segs[i];

		if (g->srv || !bytewise) {
			struct fed f = g->srv ? feed_server(&s, g->p, g->n)
					      : feed_client(&s, &up, g->p, g->n);

			bounds(&s);
			if (f.verdict)
				return i;
			continue;
		}
		for (size_t b = 0; b < g->n; b++) {
			struct fed f = feed_client(&s, &up, g->p + b, 1);

			bounds(&s);
			if (f.verdict)
				return i;
		}
	}
	return -1;
}

/* The line model: a client line completed while the logic says plaintext
 * (phase STG_PLAIN, not in a body or a BDAT chunk) whose verb is AUTH, or
 * under encrypt MAIL, RCPT or DATA, must have been a violation. */
static int space(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

static int forbidden(const char *line, size_t n, int auth_only)
{
	char v[5] = "";

	/* as Postfix reads it: whitespace before the verb skipped, any
	 * whitespace after it */
	while (n && space(*line)) {
		line++;
		n--;
	}
	for (size_t i = 0; i < 4 && i < n; i++)
		v[i] = line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i];
	if (n < 5 || (!space(line[4]) && line[4] != '\r' && line[4] != '\n'))
		return 0;
	if (!strcmp(v, "AUTH"))
		return 1;
	return !auth_only && (!strcmp(v, "MAIL") || !strcmp(v, "RCPT") ||
			      !strcmp(v, "DATA"));
}

static void model(uint8_t pol, const struct seg *segs, int nsegs)
{
	struct smtp_state s;
	struct smtp_upgrade up;
	char line[SMTP_LINE_MAX + 2];
	size_t ln = 0;
	int plain_at_start = 1;

	init(&s, &up, pol);
	for (int i = 0; i < nsegs; i++) {
		const struct seg *g = &segs[i];

		if (g->srv) {
			if (feed_server(&s, g->p, g->n).verdict)
				return;
			continue;
		}
		for (size_t b = 0; b < g->n; b++) {
			if (ln == 0)
				plain_at_start = s.phase == STG_PLAIN &&
						 !s.body && !s.skip;
			if (smtp_client_feed(&s, (__u8)g->p[b], &up))
				return;
			if (ln < sizeof(line))
				line[ln++] = g->p[b];
			if (g->p[b] == '\n') {
				if (plain_at_start &&
				    forbidden(line, ln, pol & SMTP_P_AUTH_ONLY))
					abort();
				ln = 0;
			}
			if (smtp_done(&s, 1))
				return;
		}
		if (smtp_client_end(&s, &up))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct seg segs[MAX_SEGS];
	int nsegs, whole = 1, a, b;

	if (n < 1)
		return 0;
	parse(d, n, segs, &nsegs);
	for (int i = 0; i < nsegs; i++)
		if (!segs[i].srv && segs[i].n && segs[i].p[segs[i].n - 1] != '\n')
			whole = 0;
	a = run(d[0], segs, nsegs, 0);
	b = run(d[0], segs, nsegs, 1);
	/* cutting finer may only find a violation sooner, never lose one;
	 * with whole lines per segment, in the same segment */
	if (a >= 0 && (b < 0 || b > a))
		abort();
	if (whole && !(d[0] & SMTP_P_AUTH_ONLY) && a != b)
		abort();
	model(d[0], segs, nsegs);
	return 0;
}
