// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Host unit tests of the protocol logic (include/smtp.h) and of the CIDR
 * parser (user/cidr.h): the same code that runs in the kernel, fed here
 * natively.
 *
 * A case is a dialogue: steps of client (C) or server (S) bytes, each a
 * TCP segment, with the verdict expected once the step has been fed. A
 * client step calls smtp_client_byte() per byte up to the first violation,
 * then smtp_client_end() (the segment boundary); a server step calls
 * smtp_server_byte() per byte. As in bpf/starttls_guard.bpf.c, bytes stop
 * being parsed once smtp_done() says so (the client's after its TLS record
 * header, the server's after its own), the first server byte after the
 * client's record header goes to smtp_server_answer(), and after a
 * violation the connection is reset: later steps are not fed and must say
 * DROPPED.
 *
 * Then a bounded randomized check compares the byte-wise code with a
 * simple line-based model of the policy over random dialogues cut into
 * random segments.
 *
 * Output: one "ok - NAME" or "FAIL - NAME: why" line per case, then
 * "N passed, N failed". Exit status 1 when any case failed.
 */
#include <linux/types.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"
#include "cidr.h"
#include "feed.h"

/* ------------------------------------------------------------------ */
/* Harness                                                             */
/* ------------------------------------------------------------------ */

#define MAX_STEPS 16

/* Expected verdict of a step after a violation: not fed, the guard has
 * reset the connection and drops its packets. */
#define DROPPED 100

#define OK SMTP_OK
#define V_PLAIN SMTP_V_PLAINTEXT_COMMAND
#define V_INJECT SMTP_V_STARTTLS_INJECTION
#define V_NOT_TLS SMTP_V_NOT_TLS_AFTER_220
#define V_RESPONSE SMTP_V_RESPONSE_INJECTION
#define V_TLS_NO_GO SMTP_V_TLS_WITHOUT_GO_AHEAD
#define V_REFUSED SMTP_V_AFTER_REFUSED
#define V_UNSOLICITED SMTP_V_UNSOLICITED_REPLY
#define V_SRV_NOT_TLS SMTP_V_SERVER_NOT_TLS

/* Optional expectations are stored plus one, so that 0 means "any". */
#define PH(phase) ((phase) + 1)	/* phase after the step / the case */
#define AT(off) ((off) + 1)	/* offset of the violation in the step;
				 * the step's length when the violation is
				 * found at the segment end */

struct step {
	char dir;		/* 'C' client, 'S' server; 0 ends the list */
	const char *data;
	int len;		/* -1: strlen(data) (buffers built at run time) */
	int verdict;		/* enum smtp_verdict, or DROPPED */
	int at;			/* AT(offset) or 0 */
	int ev;			/* server step: the SMTP_EV_* flags expected */
	int phase;		/* PH(phase) or 0 */
};

struct tcase {
	const char *name;
	struct step steps[MAX_STEPS];
	int phase;		/* PH(final phase) or 0 */
	int policy;		/* SMTP_P_* of the connection */
	const char *upgrade;	/* a verb taken as STARTTLS, or NULL */
};

/* A step from a string literal (embedded NULs allowed: the length is the
 * literal's), optional expectations as designated initialisers after. */
#define C(str, v, ...)                                                     \
	{ .dir = 'C', .data = (str), .len = sizeof(str) - 1, .verdict = (v), \
	  __VA_ARGS__ }
#define S(str, v, ...)                                                     \
	{ .dir = 'S', .data = (str), .len = sizeof(str) - 1, .verdict = (v), \
	  __VA_ARGS__ }
/* A client step from a buffer filled at run time, of length @n (-1:
 * strlen) */
#define CB(buf, n, v, ...)                                                 \
	{ .dir = 'C', .data = (buf), .len = (n), .verdict = (v), __VA_ARGS__ }

#define GREETING S("220 mx.example.org ESMTP\r\n", OK)
#define EHLO_OK                                                            \
	C("EHLO client.example.com\r\n", OK),                              \
	S("250-mx.example.org\r\n250-STARTTLS\r\n250 HELP\r\n", OK)
/* an EHLO answered with CHUNKING offered (BDAT) */
#define EHLO_CHUNKING                                                      \
	C("EHLO client.example.com\r\n", OK),                              \
	S("250-mx.example.org\r\n250-CHUNKING\r\n250 STARTTLS\r\n", OK)
#define STARTTLS_220                                                       \
	C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),             \
	S("220 2.0.0 Ready to start TLS\r\n", OK, .phase = PH(STG_TLS_GO))
/* A TLS record header (handshake, TLS 1.0 record version) and more, and
 * the server's answer: a handshake record */
#define HELLO                                                              \
	C("\x16\x03\x01\x00\x05", OK, .phase = PH(STG_TLS_HELLO)),        \
	S("\x16\x03\x03\x00\x7a", OK, .phase = PH(STG_TLS))

static const char *const verdict_names[] = {
	[SMTP_OK] = "ok",
	[SMTP_V_PLAINTEXT_COMMAND] = "plaintext_command",
	[SMTP_V_STARTTLS_INJECTION] = "starttls_injection",
	[SMTP_V_NOT_TLS_AFTER_220] = "not_tls_after_220",
	[SMTP_V_RESPONSE_INJECTION] = "response_injection",
	[SMTP_V_TLS_WITHOUT_GO_AHEAD] = "tls_without_go_ahead",
	[SMTP_V_AFTER_REFUSED] = "plaintext_after_starttls_refused",
	[SMTP_V_UNSOLICITED_REPLY] = "unsolicited_reply",
	[SMTP_V_SERVER_NOT_TLS] = "server_not_tls",
	[SMTP_V_AMBIGUOUS_END] = "ambiguous_end_of_data",
	[SMTP_V_DATA_PIPELINING] = "data_pipelining",
};

static const char *const phase_names[] = {
	[STG_PLAIN] = "STG_PLAIN",
	[STG_STARTTLS_SENT] = "STG_STARTTLS_SENT",
	[STG_TLS_GO] = "STG_TLS_GO",
	[STG_TLS_HELLO] = "STG_TLS_HELLO",
	[STG_TLS] = "STG_TLS",
	[STG_EXEMPT] = "STG_EXEMPT",
	[STG_BLOCKED] = "STG_BLOCKED",
	[STG_MONITORED] = "STG_MONITORED",
};

static const char *verdict_name(int v)
{
	if (v == DROPPED)
		return "dropped";
	if (v >= 0 && v < (int)(sizeof(verdict_names) / sizeof(*verdict_names)))
		return verdict_names[v];
	return "?";
}

static const char *phase_name(int p)
{
	if (p >= 0 && p < (int)(sizeof(phase_names) / sizeof(*phase_names)))
		return phase_names[p];
	return "?";
}

#define ESCAPE_MAX 1024

/* @p as a C string literal body, cut after @max (<= ESCAPE_MAX) bytes;
 * four results can be used at once */
static const char *escape(const char *p, size_t n, size_t max)
{
	static char out[4][4 * ESCAPE_MAX + 32];
	static int slot;
	char *o = out[slot++ & 3], *e = o;
	size_t i;

	for (i = 0; i < n && i < max && i < ESCAPE_MAX; i++) {
		unsigned char c = p[i];

		if (c == '\r')
			e += sprintf(e, "\\r");
		else if (c == '\n')
			e += sprintf(e, "\\n");
		else if (c == '\t')
			e += sprintf(e, "\\t");
		else if (c == '\\' || c == '"')
			e += sprintf(e, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			e += sprintf(e, "\\x%02x", c);
		else
			*e++ = c;
	}
	if (i < n)
		e += sprintf(e, "...(%zu bytes)", n);
	*e = '\0';
	return o;
}

/* The verbs taken as STARTTLS: none but for the cases that set some. */
static struct smtp_upgrade upgrade;

static int passed, failed;

static void report(const char *name, const char *why)
{
	if (why) {
		printf("FAIL - %s: %s\n", name, why);
		failed++;
	} else {
		printf("ok - %s\n", name);
		passed++;
	}
}

static char why_buf[8192];

static const char *why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	return why_buf;
}

static const char *why_at(size_t at, size_t n)
{
	static char buf[64];

	if (at == n)
		snprintf(buf, sizeof(buf), " at the segment end");
	else
		snprintf(buf, sizeof(buf), " at offset %zu", at);
	return buf;
}

/* Returns NULL when the case passed, else why it failed */
static const char *run_case(const struct tcase *t)
{
	struct smtp_state s;
	int reset = 0, i;

	smtp_init(&s, 0);
	s.policy = t->policy;
	memset(&upgrade, 0, sizeof(upgrade));
	if (t->upgrade && smtp_pack_verb(t->upgrade, upgrade.verb[0]))
		return why("bad upgrade verb %s", t->upgrade);
	for (i = 0; i < MAX_STEPS && t->steps[i].dir; i++) {
		const struct step *st = &t->steps[i];
		size_t n = st->len < 0 ? strlen(st->data) : (size_t)st->len;
		const char *shown = escape(st->data, n, 48);
		struct fed r;

		if (reset) {
			if (st->verdict != DROPPED)
				return why("step %d (%c \"%s\"): connection already reset, expected %s",
					   i + 1, st->dir, shown,
					   verdict_name(st->verdict));
			continue;
		}
		if (st->verdict == DROPPED)
			return why("step %d (%c \"%s\"): expected the connection reset, but no violation so far (phase %s)",
				   i + 1, st->dir, shown,
				   phase_name(s.phase));
		r = st->dir == 'C' ? feed_client(&s, &upgrade, st->data, n) :
				     feed_server(&s, st->data, n);
		if (r.verdict != st->verdict)
			return why("step %d (%c \"%s\"): expected %s, got %s%s (phase %s)",
				   i + 1, st->dir, shown,
				   verdict_name(st->verdict),
				   verdict_name(r.verdict),
				   r.verdict ? why_at(r.at, n) : "",
				   phase_name(s.phase));
		if (r.verdict && st->at && r.at != (size_t)st->at - 1)
			return why("step %d (%c \"%s\"): %s expected at offset %d, got at %zu",
				   i + 1, st->dir, shown,
				   verdict_name(r.verdict), st->at - 1, r.at);
		if (st->dir == 'S' && r.ev != st->ev)
			return why("step %d (S \"%s\"): event flags %d, expected %d",
				   i + 1, shown, r.ev, st->ev);
		if (st->phase && (int)s.phase != st->phase - 1)
			return why("step %d (%c \"%s\"): phase %s, expected %s",
				   i + 1, st->dir, shown, phase_name(s.phase),
				   phase_name(st->phase - 1));
		reset = r.verdict != SMTP_OK;
	}
	if (t->phase && (int)s.phase != t->phase - 1)
		return why("final phase %s, expected %s", phase_name(s.phase),
			   phase_name(t->phase - 1));
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Dialogues                                                           */
/* ------------------------------------------------------------------ */

#define LONG_ARG 3000

/* "EHLO " and a LONG_ARG-byte argument, CRLF; filled by main() */
static char long_ehlo[LONG_ARG + 16];
/* "NOOP " and x's: a line of SMTP_LINE_MAX bytes before its CR LF (the
 * longest allowed), and one of 16384 bytes followed by a MAIL command, as
 * Exim would read it (it keeps 16 KiB of a line, the rest is a command) */
static char max_line[SMTP_LINE_MAX + 8];
static char exim_split[16384 + 64];
/* a ClientHello record: header, then bytes that would be violations in
 * plaintext (they must not be parsed); filled by main() */
static char long_hello[1400];

static const struct tcase cases[] = {
	/* The verbs */
	{ .name = "EHLO then MAIL FROM: plaintext_command on the MAIL step",
	  .steps = { GREETING, EHLO_OK,
	    C("MAIL FROM:<alice@example.org>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 12: lowercase mail from: is a plaintext_command",
	  .steps = { GREETING, EHLO_OK,
	    C("mail from:<alice@example.org>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "lowercase ehlo allowed",
	  .steps = { GREETING, C("ehlo client\r\n", OK), S("250 mx\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "mixed-case HeLo allowed",
	  .steps = { GREETING, C("HeLo client\r\n", OK), S("250 mx\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "NOOP allowed",
	  .steps = { GREETING, EHLO_OK, C("NOOP\r\n", OK), S("250 2.0.0 Ok\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "RSET allowed",
	  .steps = { GREETING, EHLO_OK, C("RSET\r\n", OK), S("250 2.0.0 Ok\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "HELP allowed",
	  .steps = { GREETING, EHLO_OK, C("HELP\r\n", OK),
	    S("214 2.0.0 See https://www.postfix.org\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "QUIT allowed",
	  .steps = { GREETING, EHLO_OK, C("QUIT\r\n", OK), S("221 2.0.0 Bye\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "case 12: lowercase starttls is STARTTLS",
	  .steps = { GREETING, EHLO_OK, C("starttls\r\n", OK),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "STARTTLSX (longer than any verb) is a plaintext_command",
	  .steps = { GREETING, EHLO_OK, C("STARTTLSX\r\n", V_PLAIN, .at = AT(9)) } },
	{ .name = "EHLOX (an allowed verb plus a letter) is a plaintext_command",
	  .steps = { GREETING, C("EHLOX x\r\n", V_PLAIN, .at = AT(5)) } },
	{ .name = "bit 7 set on a letter: \\xc5HLO is no EHLO",
	  .steps = { GREETING, C("\xc5HLO x\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "bit 7 set on a letter: EHL\\xcf is no EHLO",
	  .steps = { GREETING, C("EHL\xcf x\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "a tab is not a verb separator: EHLO<tab>x",
	  .steps = { GREETING, C("EHLO\tx\r\n", V_PLAIN, .at = AT(6)) } },
	{ .name = "leading space \" MAIL\" is a plaintext_command",
	  .steps = { GREETING, EHLO_OK,
	    C(" MAIL FROM:<a@b>\r\n", V_PLAIN, .at = AT(0)) } },
	{ .name = "leading space \" EHLO\" is a plaintext_command",
	  .steps = { GREETING, C(" EHLO x\r\n", V_PLAIN, .at = AT(0)) } },
	{ .name = "empty line \\r\\n is a plaintext_command",
	  .steps = { GREETING, EHLO_OK, C("\r\n", V_PLAIN, .at = AT(0)) } },
	{ .name = "a NUL in a verb: EHLO\\0 x",
	  .steps = { GREETING, C("EHLO\0 x\r\n", V_PLAIN, .at = AT(5)) } },
	{ .name = "a NUL in a verb at the segment end: EHLO\\0",
	  .steps = { GREETING, C("EHLO\0", V_PLAIN, .at = AT(5)),
	    C(" x\r\n", DROPPED) } },
	{ .name = "case 5: unknown verb XXXXXXXX is a violation (default deny)",
	  .steps = { GREETING, EHLO_OK, C("XXXXXXXX\r\n", V_PLAIN, .at = AT(8)) } },
	{ .name = "case 20: AUTH PLAIN before TLS is a plaintext_command",
	  .steps = { GREETING, EHLO_OK,
	    C("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: MAIL FROM:<> is a violation",
	  .steps = { GREETING, EHLO_OK, C("MAIL FROM:<>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: RCPT TO:<x> is a violation",
	  .steps = { GREETING, EHLO_OK, C("RCPT TO:<x>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: VRFY alice is a violation",
	  .steps = { GREETING, EHLO_OK, C("VRFY alice\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: EXPN staff is a violation",
	  .steps = { GREETING, EHLO_OK, C("EXPN staff\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: ETRN x is a violation",
	  .steps = { GREETING, EHLO_OK, C("ETRN x\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: XCLIENT ADDR=1.2.3.4 is a violation",
	  .steps = { GREETING, EHLO_OK,
	    C("XCLIENT ADDR=1.2.3.4\r\n", V_PLAIN, .at = AT(7)) } },
	{ .name = "case 19: DATA is a violation",
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 19: BDAT 1 is a violation",
	  .steps = { GREETING, EHLO_OK, C("BDAT 1\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 23: BDAT 9 LAST\\r\\nMAIL FROM is a plaintext_command",
	  .steps = { GREETING, EHLO_OK,
	    C("BDAT 9 LAST\r\nMAIL FROM", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 24: pipelined MAIL/RCPT/DATA: one violation, on MAIL",
	  .steps = { GREETING, EHLO_OK,
	    C("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", V_PLAIN,
	      .at = AT(4)),
	    C("Subject: x\r\n\r\nbody\r\n.\r\n", DROPPED) } },
	{ .name = "case 11: HELO after a 500 reply to EHLO, then MAIL",
	  .steps = { GREETING, C("EHLO client\r\n", OK),
	    S("500 5.5.2 Error: command not recognized\r\n", OK),
	    C("HELO client\r\n", OK), S("250 mx.example.org\r\n", OK),
	    C("MAIL FROM:<a@b>\r\n", V_PLAIN, .at = AT(4)) } },

	/* Line framing */
	{ .name = "case 22: bare LF line ends: EHLO x\\nMAIL FROM:<a@b>\\n in one segment",
	  .steps = { GREETING, C("EHLO x\nMAIL FROM:<a@b>\n", V_PLAIN, .at = AT(11)) } },
	{ .name = "bare LF line ends are line ends: EHLO, STARTTLS, 220 -> TLS",
	  .steps = { GREETING, C("EHLO x\n", OK), S("250 mx\n", OK),
	    C("STARTTLS\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 22: CR CR LF: EHLO x\\r\\r\\nMAIL",
	  .steps = { GREETING, C("EHLO x\r\r\nMAIL FROM:<a@b>\r\n", V_PLAIN,
			.at = AT(7)) } },
	{ .name = "bare CR: EHLO x\\rfoo",
	  .steps = { GREETING, C("EHLO x\rfoo", V_PLAIN, .at = AT(7)) } },
	{ .name = "bare CR after a verb: EHLO\\rx",
	  .steps = { GREETING, C("EHLO\rx\r\n", V_PLAIN, .at = AT(5)) } },
	{ .name = "CR at a segment end, LF in the next segment",
	  .steps = { GREETING, C("EHLO x\r", OK), C("\n", OK), S("250 mx\r\n", OK),
	    STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "pipelined EHLO a, NOOP, MAIL FROM:<> in one segment",
	  .steps = { GREETING,
	    C("EHLO a\r\nNOOP\r\nMAIL FROM:<>\r\n", V_PLAIN, .at = AT(18)) } },
	{ .name = "split verb MA | IL FROM: caught at the end of the MA segment",
	  .steps = { GREETING, EHLO_OK, C("MA", V_PLAIN, .at = AT(2)),
	    C("IL FROM:<a@b>\r\n", DROPPED) } },
	{ .name = "case 6: MAIL split one byte per segment, caught on M",
	  .steps = { GREETING, EHLO_OK, C("M", V_PLAIN, .at = AT(1)),
	    C("A", DROPPED), C("I", DROPPED), C("L", DROPPED),
	    C(" FROM:<a@b>\r\n", DROPPED) } },
	{ .name = "EHLO split one byte per segment is allowed",
	  .steps = { GREETING, C("E", OK), C("h", OK), C("L", OK), C("o", OK),
	    C(" ", OK), C("x", OK), C("\r", OK), C("\n", OK),
	    S("250 mx\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "case 7: a 3000-byte EHLO argument is allowed, a later MAIL still caught",
	  .steps = { GREETING, CB(long_ehlo, -1, OK), S("250 mx\r\n", OK),
	    C("MAIL FROM:<a@b>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "a line of SMTP_LINE_MAX bytes before its LF is allowed",
	  .steps = { GREETING, EHLO_OK, CB(max_line, -1, OK), S("250 ok\r\n", OK),
	    C("NOOP\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "a longer line is a violation: NOOP, 16 KiB, MAIL (Exim reads MAIL)",
	  .steps = { GREETING, EHLO_OK,
	    CB(exim_split, -1, V_PLAIN, .at = AT(SMTP_LINE_MAX)) } },
	{ .name = "a longer line split over segments is a violation",
	  .steps = { GREETING, EHLO_OK, CB(exim_split, 4000, OK),
	    CB(exim_split + 4000, 200, V_PLAIN, .at = AT(SMTP_LINE_MAX - 4000)) } },

	/* STARTTLS and the upgrade */
	{ .name = "STARTTLS split STA | RTTLS, 220, hello -> TLS",
	  .steps = { GREETING, EHLO_OK, C("STA", OK),
	    C("RTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "STARTTLS, 220, ClientHello -> TLS",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, HELLO }, .phase = PH(STG_TLS) },
	{ .name = "case 26: after TLS, client and server bytes are not parsed",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, HELLO,
	    C("MAIL FROM:<a@b>\r\n", OK), S("garbage\r", OK) },
	  .phase = PH(STG_TLS) },
	{ .name = "case 30: a long ClientHello split as 1 byte, then the rest -> TLS",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x16", OK, .phase = PH(STG_TLS_GO)),
	    CB(long_hello + 1, sizeof(long_hello) - 1, OK,
	       .phase = PH(STG_TLS_HELLO)),
	    S("\x16\x03\x03\x00\x7a\x02", OK, .phase = PH(STG_TLS)) },
	  .phase = PH(STG_TLS) },
	{ .name = "case 30: the record header in its own segment, the hello in three",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x16\x03\x01\x06\xf0", OK, .phase = PH(STG_TLS_HELLO)),
	    CB(long_hello + 5, 600, OK), CB(long_hello + 605, 600, OK),
	    CB(long_hello + 1205, 100, OK, .phase = PH(STG_TLS_HELLO)),
	    S("\x16\x03\x03\x00\x7a\x02", OK, .phase = PH(STG_TLS)) },
	  .phase = PH(STG_TLS) },
	{ .name = "case 30: an SSLv2-style hello (80 xx 01) is not_tls_after_220",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x80\x2e\x01\x03\x01", V_NOT_TLS, .at = AT(0)) } },
	{ .name = "after 220, application data (17 03 03) is not_tls_after_220",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x17\x03\x03\x00\x05", V_NOT_TLS, .at = AT(0)) } },
	{ .name = "after 220, record version 03 05 is not_tls_after_220",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x16\x03\x05\x00\x05", V_NOT_TLS, .at = AT(2)) } },
	{ .name = "after 220, record version 03 04 is accepted",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03\x04", OK) },
	  .phase = PH(STG_TLS_HELLO) },
	{ .name = "case 10: hello answered by an alert and a 454: plaintext again, QUIT passes, MAIL caught",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", OK,
	      .phase = PH(STG_TLS_HELLO)),
	    S("\x15\x03\x00\x00\x02\x02\x28"
	      "454 4.7.0 TLS not available due to a temporary reason\r\n", OK,
	      .ev = SMTP_EV_TLS_FAILED, .phase = PH(STG_PLAIN)),
	    C("QUIT\r\n", OK), S("221 2.0.0 Bye\r\n", OK),
	    C("MAIL FROM:<alice@example.org>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "hello answered by an alert and a 454, NOOP, STARTTLS again -> TLS",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03\x01", OK),
	    S("\x15\x03\x03\x00\x02\x02\x28" "454 4.7.0 try again\r\n", OK,
	      .ev = SMTP_EV_TLS_FAILED, .phase = PH(STG_PLAIN)),
	    C("NOOP\r\n", OK), S("250 ok\r\n", OK), STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "hello answered in plaintext (500): server_not_tls",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03\x01", OK),
	    S("500 5.5.2 Error: bad syntax\r\n", V_SRV_NOT_TLS, .at = AT(0)) } },
	{ .name = "hello answered by application data (17): server_not_tls",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03\x01", OK),
	    S("\x17\x03\x03\x00\x10", V_SRV_NOT_TLS, .at = AT(0)) } },
	{ .name = "after a failed handshake, a 220 alone is unsolicited_reply",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03\x01", OK),
	    S("\x15\x03\x03\x00\x02\x02\x28" "454 no\r\n", OK,
	      .ev = SMTP_EV_TLS_FAILED),
	    S("220 go\r\n", V_UNSOLICITED) } },
	{ .name = "hello answered by an alert: the rest of its record is no verb",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("\x16\x03\x01\x00\x05MAIL ", OK, .phase = PH(STG_TLS_HELLO)),
	    S("\x15\x03\x03\x00\x02\x02\x28", OK, .ev = SMTP_EV_TLS_FAILED),
	    C("NOOP\r\n", OK), C("MAIL FROM:<a@b>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "case 8: STARTTLS refused with 454: plaintext again, MAIL caught",
	  .steps = { GREETING, EHLO_OK,
	    C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("454 4.7.0 TLS not available due to local problem\r\n", OK,
	      .ev = SMTP_EV_REFUSED, .phase = PH(STG_PLAIN)),
	    C("MAIL FROM:<a@b>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "case 8: a ClientHello after the 454 is tls_without_go_ahead",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    S("454 4.7.0 TLS not available due to local problem\r\n", OK,
	      .ev = SMTP_EV_REFUSED),
	    C("\x16\x03\x01\x00\x05\x01", V_TLS_NO_GO) } },
	{ .name = "case 8: a refused STARTTLS's verdict also catches a line cut at its verb",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    S("472 no\r\n", OK, .ev = SMTP_EV_REFUSED), C("MA", V_REFUSED) } },
	{ .name = "case 8: STARTTLS refused with 400: plaintext again, MAIL caught",
	  .steps = { GREETING, EHLO_OK,
	    C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("400 4.0.0 try later\r\n", OK, .ev = SMTP_EV_REFUSED,
	      .phase = PH(STG_PLAIN)),
	    C("MAIL FROM:<a@b>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "case 8: STARTTLS refused with 472: plaintext again, MAIL caught",
	  .steps = { GREETING, EHLO_OK,
	    C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("472 no\r\n", OK, .ev = SMTP_EV_REFUSED, .phase = PH(STG_PLAIN)),
	    C("MAIL FROM:<a@b>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "STARTTLS refused, then STARTTLS again accepted -> TLS",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    S("454 4.7.0 busy\r\n", OK, .ev = SMTP_EV_REFUSED,
	      .phase = PH(STG_PLAIN)),
	    C("NOOP\r\n", OK), S("250 ok\r\n", OK), STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "injection: STARTTLS\\r\\nMAIL FROM in one segment",
	  .steps = { GREETING, EHLO_OK,
	    C("STARTTLS\r\nMAIL FROM:<a@b>\r\n", V_INJECT, .at = AT(10)) } },
	{ .name = "injection: RSET in a separate segment before STARTTLS's reply",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    C("RSET\r\n", V_INJECT, .at = AT(0)),
	    S("220 go\r\n", DROPPED) } },
	{ .name = "injection: ClientHello before STARTTLS's reply",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    C("\x16\x03\x01\x00\x05", V_INJECT, .at = AT(0)) } },
	{ .name = "after 220, MAIL is not_tls_after_220",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    C("MAIL FROM:<a@b>\r\n", V_NOT_TLS, .at = AT(0)) } },
	{ .name = "after 220, more server bytes in the same segment: response_injection",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    S("220 Ready\r\n250-AUTH PLAIN", V_RESPONSE, .at = AT(11)) } },
	{ .name = "after 220, server bytes in a later segment: response_injection",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220,
	    S("250 AUTH PLAIN\r\n", V_RESPONSE, .at = AT(0)) } },
	{ .name = "after 220 and part of the record header, server bytes: response_injection",
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, C("\x16\x03", OK),
	    S("2", V_RESPONSE, .at = AT(0)) } },

	/* Counting replies */
	{ .name = "multi-line EHLO reply in one segment is one reply",
	  .steps = { GREETING, C("EHLO x\r\n", OK),
	    S("250-mx\r\n250-STARTTLS\r\n250 HELP\r\n", OK), STARTTLS_220,
	    HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 15: multi-line EHLO reply, a line per segment, is one reply",
	  .steps = { GREETING, C("EHLO x\r\n", OK), S("250-mx\r\n", OK),
	    S("250-STARTTLS\r\n", OK), S("250 HELP\r\n", OK), STARTTLS_220,
	    HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "multi-line reply to a pipelined EHLO does not answer STARTTLS",
	  .steps = { GREETING, C("EHLO x\r\nSTARTTLS\r\n", OK),
	    S("250-mx\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("250-STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("250 HELP\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "pipelined EHLO x\\r\\nSTARTTLS\\r\\n: 250, 220, hello -> TLS",
	  .steps = { GREETING,
	    C("EHLO x\r\nSTARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("250 ok\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "pipelined EHLO and STARTTLS: 250 and 220 in one segment -> TLS_GO",
	  .steps = { GREETING, C("EHLO x\r\nSTARTTLS\r\n", OK),
	    S("250 ok\r\n220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "reply lines without text (250\\r\\n, 220\\r\\n) are final",
	  .steps = { GREETING, C("EHLO x\r\n", OK), S("250\r\n", OK),
	    C("STARTTLS\r\n", OK),
	    S("220\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 14: greeting split 220 mx ESMTP | \\r\\n",
	  .steps = { S("220 mx ESMTP", OK), S("\r\n", OK), C("EHLO x\r\n", OK),
	    S("250 mx\r\n", OK), STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 16: multi-line greeting counts as the greeting only",
	  .steps = { S("220-mx.example.org ESMTP\r\n", OK), S("220-no UCE\r\n", OK),
	    S("220 mx\r\n", OK), C("EHLO x\r\n", OK), S("250 mx\r\n", OK),
	    STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "STARTTLS during a multi-line greeting: its last line is no reply",
	  .steps = { S("220-mx.example.org ESMTP\r\n", OK),
	    C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 mx\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 16: STARTTLS before the greeting, greeting's 220, hello: starttls_injection",
	  .steps = { C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 mx.example.org ESMTP\r\n", OK,
	      .phase = PH(STG_STARTTLS_SENT)),
	    C("\x16\x03\x01\x00\x05", V_INJECT, .at = AT(0)) } },
	{ .name = "case 21: STARTTLS before EHLO answered 503: plaintext, MAIL caught as after a refusal",
	  .steps = { GREETING, C("STARTTLS\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("503 5.5.1 Error: send HELO/EHLO first\r\n", OK, .ev = SMTP_EV_REFUSED,
	      .phase = PH(STG_PLAIN)),
	    C("MAIL FROM:<a@b>\r\n", V_REFUSED, .at = AT(4)) } },
	{ .name = "case 21: STARTTLS before EHLO answered 220, hello -> TLS",
	  .steps = { GREETING, STARTTLS_220, HELLO }, .phase = PH(STG_TLS) },
	{ .name = "case 4: STARTTLS not advertised (stripped): MAIL still caught",
	  .steps = { GREETING, C("EHLO c.example.org\r\n", OK),
	    S("250-mx.example.org\r\n250 SIZE 10240000\r\n", OK),
	    C("MAIL FROM:<alice@example.org>\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "case 5: XXXXXXXX (a STARTTLS masked by a firewall) is a violation",
	  .steps = { GREETING, C("EHLO c\r\n", OK),
	    S("250-mx.example.org\r\n250 XXXXXXXA\r\n", OK),
	    C("XXXXXXXX\r\n", V_PLAIN) } },
	{ .name = "case 13: STARTTLS on the last EHLO line (250 STARTTLS) -> TLS",
	  .steps = { GREETING, C("EHLO c\r\n", OK),
	    S("250-mx.example.org\r\n250-SIZE 35882577\r\n250 STARTTLS\r\n", OK),
	    STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 13: STARTTLS inside a long multi-line 250 -> TLS",
	  .steps = { GREETING, C("EHLO c\r\n", OK),
	    S("250-mx.example.org\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
	      "250-STARTTLS\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n", OK),
	    STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "case 25: X-ANONYMOUSTLS (Exchange) is a plaintext_command",
	  .steps = { GREETING, EHLO_OK, C("X-ANONYMOUSTLS\r\n", V_PLAIN) } },
	{ .name = "case 25: X-ANONYMOUSTLS as an upgrade verb: 220, hello -> TLS",
	  .upgrade = "X-ANONYMOUSTLS",
	  .steps = { GREETING, EHLO_OK,
	    C("x-anonymoustls\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 2.0.0 SMTP server ready\r\n", OK, .phase = PH(STG_TLS_GO)),
	    HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "an upgrade verb split X-ANONY | MOUSTLS, then injection caught",
	  .upgrade = "X-ANONYMOUSTLS",
	  .steps = { GREETING, EHLO_OK, C("X-ANONY", OK),
	    C("MOUSTLS\r\nMAIL FROM:<a@b>\r\n", V_INJECT) } },
	{ .name = "an upgrade verb refused: plaintext rules again",
	  .upgrade = "X-ANONYMOUSTLS",
	  .steps = { GREETING, EHLO_OK, C("X-ANONYMOUSTLS\r\n", OK),
	    S("500 5.3.3 Unrecognized command\r\n", OK, .ev = SMTP_EV_REFUSED),
	    C("MAIL FROM:<a@b>\r\n", V_REFUSED) } },
	{ .name = "a longer verb than the upgrade verb is a plaintext_command",
	  .upgrade = "X-ANONYMOUSTLS",
	  .steps = { GREETING, EHLO_OK, C("X-ANONYMOUSTLSX\r\n", V_PLAIN) } },

	/* Policy auth-only: only AUTH before TLS; bodies followed */
	{ .name = "auth-only: a whole plaintext transaction passes, AUTH in its body too",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", OK),
	    S("250 ok\r\n250 ok\r\n354 go ahead\r\n", OK),
	    C("Subject: x\r\n\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n..dot\r\n.\r\n", OK),
	    S("250 queued\r\n", OK), C("QUIT\r\n", OK), S("221 bye\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "auth-only: AUTH before TLS is a plaintext_command",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("auth login\r\n", V_PLAIN, .at = AT(4)) } },
	{ .name = "auth-only: AUTH after a body is caught",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("MAIL FROM:<a@b>\r\n", OK),
	    S("250 ok\r\n", OK), C("RCPT TO:<c@d>\r\n", OK),
	    S("250 ok\r\n", OK), C("DATA\r\n", OK), S("354 go\r\n", OK),
	    C("body\r\n.\r\nAUTH PLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "auth-only: a body ended by LF . LF, then AUTH: caught",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", OK), S("354 go\r\n", OK),
	    C("body\n.\nAUTH PLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "auth-only: \\r\\n.\\r then more (smuggling) is ambiguous_end_of_data",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", OK), S("354 go\r\n", OK),
	    C("body\r\n.\rAUTH PLAIN AGFs\r\n", SMTP_V_AMBIGUOUS_END) } },
	{ .name = "auth-only: a dot after a bare CR is ambiguous_end_of_data",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", OK), S("354 go\r\n", OK),
	    C("body\r.\r\n", SMTP_V_AMBIGUOUS_END) } },
	{ .name = "auth-only: the body's end split over segments",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", OK), S("354 go\r\n", OK),
	    C("line\r", OK), C("\n.", OK), C("\r", OK), C("\nAU", V_PLAIN) } },
	{ .name = "auth-only: DATA refused (554): the next lines are commands",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("DATA\r\n", OK),
	    S("554 5.5.1 Error: no valid recipients\r\n", OK),
	    C("AUTH PLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "auth-only: bytes after DATA before its reply are data_pipelining",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("DATA\r\nAUTH PLAIN AGFs\r\n", SMTP_V_DATA_PIPELINING, .at = AT(6)) } },
	{ .name = "auth-only: MAIL, RCPT, DATA and its end in one segment (review) are data_pipelining",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n", SMTP_V_DATA_PIPELINING) } },
	{ .name = "auth-only: leading whitespace does not hide AUTH (review)",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C(" AUTH PLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "auth-only: a tab before AUTH does not hide it (review)",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("\tAUTH LOGIN\r\n", V_PLAIN) } },
	{ .name = "auth-only: AUTH<tab>PLAIN is AUTH (review)",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("AUTH\tPLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "auth-only: BDAT<tab>4 is BDAT, its chunk skipped, AUTH after caught (review)",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING,
	    C("BDAT\t4\r\nxxxxAUTH PLAIN AGFs\r\n", V_PLAIN) } },
	{ .name = "encrypt: a tab after EHLO is no allowed verb",
	  .steps = { GREETING, C("EHLO\tx\r\n", V_PLAIN) } },
	{ .name = "auth-only: BDAT chunks skipped by count, next command in the same segment",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING,
	    C("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 16\r\nAUTH PLAIN x\r\n.\nBDAT 8 LAST\r\n\r\n.\r\nxyzNOOP\r\n", OK),
	    S("250 ok\r\n250 ok\r\n250 16 octets\r\n250 queued\r\n250 ok\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "auth-only: a BDAT chunk over segments, then AUTH caught",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING, C("BDAT 10 LAST\r\nAUTH ", OK),
	    C("PLA", OK), C("IN\r\nAUTH PLAIN x\r\n", V_PLAIN, .at = AT(8)) } },
	{ .name = "auth-only: BDAT where the server did not offer CHUNKING (review)",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("BDAT 33\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", V_PLAIN, .at = AT(8)) } },
	{ .name = "auth-only: CHUNKING in a line that is not the keyword alone does not count",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, C("EHLO x\r\n", OK),
	    S("250-mx CHUNKING\r\n250-CHUNKINGS\r\n250 xCHUNKING\r\n", OK),
	    C("BDAT 3\r\nabc", V_PLAIN) } },
	{ .name = "auth-only: chunking offered in lowercase, last line, split over segments",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, C("EHLO x\r\n", OK), S("250-mx\r\n250 chun", OK),
	    S("king\r\n", OK), C("BDAT 3 LAST\r\nabcNOOP\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "auth-only: BDAT with a size that is not plain digits is a violation",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING, C("BDAT 1x\r\n", V_PLAIN) } },
	{ .name = "auth-only: BDAT without a size is a violation",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING, C("BDAT\r\n", V_PLAIN) } },
	{ .name = "auth-only: BDAT with a size past 2^31 is a violation",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_CHUNKING, C("BDAT 99999999999 LAST\r\n", V_PLAIN) } },
	{ .name = "auth-only: a segment ending in AU is caught, MA is not",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, C("MA", OK), C("IL FROM:<a@b>\r\n", OK),
	    C("AU", V_PLAIN) } },
	{ .name = "auth-only: STARTTLS, 220, hello -> TLS",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK, STARTTLS_220, HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "auth-only: injection after STARTTLS still caught",
	  .policy = SMTP_P_AUTH_ONLY,
	  .steps = { GREETING, EHLO_OK,
	    C("STARTTLS\r\nMAIL FROM:<a@b>\r\n", V_INJECT) } },

	/* One-way: the server's packets are not seen */
	{ .name = "one-way: STARTTLS and a hello upgrade without the 220",
	  .policy = SMTP_P_ONE_WAY,
	  .steps = { C("EHLO x\r\n", OK), C("STARTTLS\r\n", OK),
	    C("\x16\x03\x01\x00\x05", OK) },
	  .phase = PH(STG_TLS) },
	{ .name = "one-way: STARTTLS then plaintext: refused, MAIL caught",
	  .policy = SMTP_P_ONE_WAY,
	  .steps = { C("EHLO x\r\n", OK), C("STARTTLS\r\n", OK),
	    C("EHLO x\r\n", OK), C("MAIL FROM:<a@b>\r\n", V_REFUSED) } },
	{ .name = "one-way: STARTTLS, a hello header, then plaintext: not_tls_after_220",
	  .policy = SMTP_P_ONE_WAY,
	  .steps = { C("EHLO x\r\n", OK), C("STARTTLS\r\n", OK),
	    C("\x16MAIL", V_NOT_TLS) } },
	{ .name = "one-way: MAIL without STARTTLS is caught",
	  .policy = SMTP_P_ONE_WAY,
	  .steps = { C("EHLO x\r\n", OK), C("MAIL FROM:<a@b>\r\n", V_PLAIN) } },
	{ .name = "an unsolicited 220 after the greeting is unsolicited_reply",
	  .steps = { GREETING, S("220 mx.example.org again\r\n", V_UNSOLICITED) } },
	{ .name = "a second reply to STARTTLS (250 then a forged 220) is unsolicited_reply",
	  .steps = { GREETING, EHLO_OK, C("STARTTLS\r\n", OK),
	    S("454 not now\r\n", OK, .ev = SMTP_EV_REFUSED),
	    S("220 go ahead\r\n", V_UNSOLICITED),
	    C("\x16\x03\x01", DROPPED) } },
	{ .name = "pipelined replies after pipelined commands keep the count",
	  .steps = { GREETING, C("EHLO x\r\nNOOP\r\nRSET\r\n", OK),
	    S("250-mx\r\n250 PIPELINING\r\n250 ok\r\n", OK),
	    S("250 ok\r\n", OK), S("250 extra\r\n", V_UNSOLICITED) } },
	{ .name = "a 421 without a command (the server closing) is no violation",
	  .steps = { GREETING, EHLO_OK,
	    S("421 4.4.2 mx Error: timeout exceeded\r\n", OK) },
	  .phase = PH(STG_PLAIN) },
	{ .name = "replies not counted before the greeting's last line",
	  .steps = { S("220-mx.example.org ESMTP\r\n", OK),
	    C("STARTTLS\r\n", OK), S("220-more\r\n", OK),
	    S("220 done\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    C("\x16\x03\x01", V_INJECT) } },
	{ .name = "a greeting's CRLF in its own segment, then an EHLO reply line by line",
	  .steps = { S("220 mx ESMTP", OK), S("\r", OK), S("\n", OK),
	    C("EHLO x\r\n", OK), S("250-mx\r\n", OK), S("250-PIPELINING\r\n", OK),
	    S("250-STARTTLS\r\n", OK), S("250 8BITMIME\r\n", OK), STARTTLS_220,
	    HELLO },
	  .phase = PH(STG_TLS) },
	{ .name = "TLS before any STARTTLS is tls_without_go_ahead",
	  .steps = { GREETING, EHLO_OK,
	    C("\x16\x03\x01\x00\x05\x01", V_TLS_NO_GO) } },
	{ .name = "TLS right after the greeting is tls_without_go_ahead",
	  .steps = { GREETING, C("\x16", V_TLS_NO_GO) } },
	{ .name = "a masked capability (XXXXXXXA) is an unknown command",
	  .steps = { GREETING, C("EHLO x\r\n", OK),
	    S("250-mx\r\n250-XXXXXXXA\r\n250 8BITMIME\r\n", OK),
	    C("XXXXXXXA\r\n", V_PLAIN) } },
	{ .name = "enforcement without STARTTLS advertised: MAIL still caught",
	  .steps = { GREETING, C("EHLO x\r\n", OK),
	    S("250-mx\r\n250 8BITMIME\r\n", OK),
	    C("MAIL FROM:<a@b>\r\n", V_PLAIN) } },
	{ .name = "a server line that is not a reply (no code) answers nothing",
	  .steps = { GREETING, C("STARTTLS\r\n", OK),
	    S("hello\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("22\r\n", OK, .phase = PH(STG_STARTTLS_SENT)),
	    S("220 go\r\n", OK, .phase = PH(STG_TLS_GO)), HELLO },
	  .phase = PH(STG_TLS) },
};

/* ------------------------------------------------------------------ */
/* case 59: CIDRs                                                      */
/* ------------------------------------------------------------------ */

struct cidr_case {
	const char *in;
	int ok;			/* stg_cidr_parse() should accept it */
	const char *addr;	/* expected address, as IPv6 text */
	unsigned int prefixlen;	/* expected key prefix length */
	const char *text;	/* expected stg_cidr_format(), or the
				 * start of the error */
};

#define ACCEPT(s, a, len, t) \
	{ .in = (s), .ok = 1, .addr = (a), .prefixlen = (len), .text = (t) }
#define REJECT(s, w) { .in = (s), .ok = 0, .text = (w) }

static const struct cidr_case cidr_cases[] = {
	ACCEPT("192.0.2.10", "::ffff:192.0.2.10", 96 + 32, "192.0.2.10/32"),
	ACCEPT("192.0.2.0/24", "::ffff:192.0.2.0", 96 + 24, "192.0.2.0/24"),
	ACCEPT("2001:db8::/32", "2001:db8::", 32, "2001:db8::/32"),
	ACCEPT("::1", "::1", 128, "::1/128"),
	ACCEPT("0.0.0.0/0", "::ffff:0.0.0.0", 96 + 0, "0.0.0.0/0"),
	ACCEPT("::/0", "::", 0, "::/0"),
	/* the mapped form is the same key as the IPv4 one */
	ACCEPT("::ffff:192.0.2.0/120", "::ffff:192.0.2.0", 120, "192.0.2.0/24"),
	REJECT("192.0.2.10/33", "an IPv4 prefix length is at most 32"),
	REJECT("300.1.1.1/8", "not an IPv4 or IPv6 address"),
	REJECT("192.0.2.1/24", "host bits"),		/* host bits set */
	REJECT("2001:db8::1/32", "host bits"),	/* host bits set */
	REJECT("2001:db8::/129", "an IPv6 prefix length is at most 128"),
	REJECT("abc", "not an"),
	REJECT("", "not an"),
	REJECT("192.0.2.0/", "the prefix length is not a decimal number"),
	REJECT("192.0.2.0/024", "the prefix length is not a decimal number"),
	REJECT("192.0.2.0/ 8", "the prefix"),
	REJECT("192.0.2.0/-8", "the prefix"),
	REJECT("192.0.2.0/24x", "the prefix"),
	REJECT(" 192.0.2.0/24", "not an"),
	REJECT("192.0.2.0/99999999999999999999999", ""),
	REJECT("1111:2222:3333:4444:5555:6666:7777:8888/128xxxxxxxxxxxxxxxxxx", "not an"),
};

static const char *run_cidr(const struct cidr_case *t)
{
	struct stg_host_key k, k2, want;
	char text[INET6_ADDRSTRLEN + 8];
	const char *r = stg_cidr_parse(t->in, &k);

	if (!t->ok && !r)
		return why("accepted, as prefixlen %u", k.prefixlen);
	if (!t->ok)
		return strncmp(r, t->text, strlen(t->text)) ?
			       why("error \"%s\", expected \"%s...\"", r, t->text) :
			       NULL;
	if (r)
		return why("rejected: %s", r);
	memset(&want, 0, sizeof(want));
	if (inet_pton(AF_INET6, t->addr, want.addr) != 1)
		return why("bad test address %s", t->addr);
	want.prefixlen = t->prefixlen;
	if (k.prefixlen != want.prefixlen)
		return why("prefixlen %u, expected %u", k.prefixlen,
			   want.prefixlen);
	if (memcmp(&k, &want, sizeof(k)))
		return why("wrong address");
	stg_cidr_format(&k, text, sizeof(text));
	if (strcmp(text, t->text))
		return why("formatted as \"%s\", expected \"%s\"", text,
			   t->text);
	if (stg_cidr_parse(text, &k2) || memcmp(&k, &k2, sizeof(k)))
		return why("\"%s\" does not parse back to the same key", text);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Randomized check against a line-based model                         */
/* ------------------------------------------------------------------ */

#define RAND_SEED 0x5354415254544c53ULL	/* "STARTTLS" */
#define RAND_DIALOGUES 20000
#define RAND_MAX_LINES 8
#define RAND_BUF 1024

static __u64 rng_state = RAND_SEED;

/* xorshift64* */
static __u64 rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* uniform enough in 0..n-1 */
static unsigned int rnd_below(unsigned int n)
{
	return (unsigned int)((rnd() >> 32) % n);
}

static const char *const model_verbs[] = {
	"EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "HELP", "QUIT",
};

static unsigned char ascii_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* @p[0..n) is, case-insensitively, a prefix of (@whole: exactly) one of
 * the allowed verbs */
static int model_verb(const unsigned char *p, size_t n, int whole)
{
	size_t v, i;

	for (v = 0; v < sizeof(model_verbs) / sizeof(*model_verbs); v++) {
		const char *w = model_verbs[v];

		if (n > strlen(w) || (whole && n != strlen(w)))
			continue;
		for (i = 0; i < n && ascii_upper(p[i]) == (unsigned char)w[i];
		     i++)
			;
		if (i == n)
			return 1;
	}
	return 0;
}

/* A client line (without its LF) is fine: a CR only as its last byte
 * (right before the LF), and a verb token, up to the first space or CR or
 * the end, that is an allowed verb. For the stream's last line, when no
 * LF ends it (@complete 0), an unterminated token needs only to start an
 * allowed verb (more may come). *tok: the token's length. */
static int model_line_ok(const unsigned char *p, size_t n, int complete,
			 size_t *tok)
{
	size_t i, t;

	for (i = 0; i + 1 < n; i++)
		if (p[i] == '\r')
			return 0;
	for (t = 0; t < n && p[t] != ' ' && p[t] != '\r'; t++)
		;
	*tok = t;
	return model_verb(p, t, complete || t < n);
}

struct model {
	int violation;		/* the stream has a violation */
	int verdict;		/* which: a TLS record's first byte (0x16) at
				 * the start of the bad line, or any other */
	size_t bad_start;	/* the first bad line: its first byte */
	size_t bad_end;		/* its LF, or the stream's last byte */
	unsigned int lines;	/* complete lines, when no violation */
	int starttls;		/* a complete STARTTLS line: out of scope */
};

static struct model model_run(const unsigned char *p, size_t n)
{
	struct model m = { 0 };
	size_t start = 0, i, tok;

	for (i = 0; i <= n; i++) {
		int complete = i < n && p[i] == '\n';

		if (!complete && i < n)
			continue;
		if (i == start && !complete)
			break;	/* the stream ended on a line end */
		if (!model_line_ok(p + start, i - start, complete, &tok)) {
			m.violation = 1;
			m.verdict = i > start && p[start] == 0x16 ?
					    V_TLS_NO_GO : V_PLAIN;
			m.bad_start = start;
			m.bad_end = i < n ? i : n - 1;
			return m;
		}
		/* the only 8-byte verb */
		if (complete && tok == 8)
			m.starttls = 1;
		m.lines += complete;
		start = i + 1;
	}
	return m;
}

struct code_run {
	int verdict;
	size_t at;		/* stream offset of the byte that was last fed */
	unsigned int cmds;
	enum stg_phase phase;
};

/* Feed @p[0..n) cut before each offset in @cuts[0..ncuts) */
static struct code_run code_run(const unsigned char *p, size_t n,
				const size_t *cuts, size_t ncuts)
{
	struct code_run r = { 0 };
	struct smtp_state s;
	size_t seg, from = 0;

	smtp_init(&s, 0);
	for (seg = 0; seg <= ncuts; seg++) {
		size_t to = seg < ncuts ? cuts[seg] : n;
		struct fed f = feed_client(&s, &upgrade, (const char *)p + from,
					   to - from);

		if (f.verdict) {
			r.verdict = f.verdict;
			/* at the segment end: its last byte */
			r.at = from + f.at - (f.at == to - from);
			break;
		}
		from = to;
	}
	r.cmds = s.cmds;
	r.phase = s.phase;
	return r;
}

/* Append to @b one random line, allowed or not, in random case */
static size_t gen_line(unsigned char *b)
{
	static const char *const allowed[] = {
		"EHLO", "HELO", "NOOP", "RSET", "HELP", "QUIT",
	};
	static const char *const bad[] = {
		"MAIL FROM:<a@b>", "RCPT TO:<x@y>", "DATA", "BDAT 1 LAST",
		"AUTH PLAIN AGFsaWNl", "VRFY alice", "EXPN staff", "ETRN x",
		"XCLIENT ADDR=1.2.3.4", "XXXXXXXX", "STARTTLSX", "EHLOX",
		"EHL", "HEL", "STARTTL", "QUITS", "NOOPNOOP", "E HLO", "",
		" EHLO x", "\tNOOP", "HELO\tx", "HELP\rx", "RSET\r\r",
	};
	unsigned int kind = rnd_below(100), i, k;
	size_t n = 0;

	if (kind < 88) {
		/* an allowed line, perhaps mutated below */
		n = strlen(strcpy((char *)b, allowed[rnd_below(6)]));
		if (rnd_below(3)) {
			b[n++] = ' ';
			for (k = rnd_below(24), i = 0; i < k; i++)
				b[n++] = 0x20 + rnd_below(0x5f);
		}
		if (kind >= 84) {
			/* a CR, a NUL or a byte >= 0x80 anywhere */
			static const unsigned char odd[] = { '\r', 0, 0x80,
							     0xe9, '\t', ' ' };

			k = rnd_below(n + 1);
			memmove(b + k + 1, b + k, n - k);
			b[k] = odd[rnd_below(sizeof(odd))];
			n++;
		} else if (kind >= 80) {
			/* bit 7 set on a byte: \xc5HLO is no EHLO */
			b[rnd_below(n)] |= 0x80;
		}
	} else if (kind < 96) {
		const char *l = bad[rnd_below(sizeof(bad) / sizeof(*bad))];

		n = strlen(l);
		memcpy(b, l, n);
	} else {
		/* random bytes, line ends included */
		for (k = rnd_below(12), i = 0; i < k; i++)
			b[n++] = rnd_below(256);
	}
	for (i = 0; i < n; i++)
		if ((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'z' && rnd_below(2))
			b[i] ^= 0x20;	/* random case */
	k = rnd_below(10);
	if (k < 7) {
		b[n++] = '\r';
		b[n++] = '\n';
	} else if (k < 9) {
		b[n++] = '\n';
	} else {
		b[n++] = '\r';
		b[n++] = '\r';
		b[n++] = '\n';
	}
	return n;
}

/* The cut offsets, for a failure message */
static const char *show_cuts(const size_t *cuts, size_t ncuts, size_t n)
{
	static char buf[512];
	size_t i, o = 0;

	if (!ncuts)
		return "in one segment";
	if (ncuts + 1 == n)
		return "one byte per segment";
	o += snprintf(buf, sizeof(buf), "cut before");
	for (i = 0; i < ncuts && o < sizeof(buf) - 16; i++)
		o += snprintf(buf + o, sizeof(buf) - o, " %zu", cuts[i]);
	if (i < ncuts)
		snprintf(buf + o, sizeof(buf) - o, " ...");
	return buf;
}

#define RAND_SEGMENTATIONS 4

/* Random dialogues of client lines (no STARTTLS), each fed in one
 * segment, one byte per segment and cut at random twice: the code must
 * find a violation exactly when the model does, and in the model's first
 * bad line; without one it must have counted the model's lines. */
static const char *run_random(unsigned int *clean, unsigned int *dirty)
{
	static unsigned char d[RAND_BUF];
	static size_t cuts[RAND_BUF];
	static char first[4 * ESCAPE_MAX + 1024];
	unsigned int iter, wrong = 0;

	for (iter = 0; iter < RAND_DIALOGUES; iter++) {
		unsigned int lines = 1 + rnd_below(RAND_MAX_LINES), l, seg;
		size_t n = 0;
		struct model m;

		for (l = 0; l < lines; l++)
			n += gen_line(d + n);
		if (!rnd_below(4)) {
			/* and the start of a line that no LF ends */
			unsigned char t[64];
			size_t tn = gen_line(t);

			tn = rnd_below(tn);
			memcpy(d + n, t, tn);
			n += tn;
		}
		m = model_run(d, n);
		if (m.starttls) {
			iter--;	/* out of scope, draw another */
			continue;
		}
		if (m.violation)
			(*dirty)++;
		else
			(*clean)++;
		for (seg = 0; seg < RAND_SEGMENTATIONS; seg++) {
			size_t ncuts = 0, i;
			struct code_run r;
			const char *bad = NULL;

			for (i = 1; i < n; i++)
				if (seg == 1 ||
				    (seg >= 2 && !rnd_below(seg == 2 ? 4 : 16)))
					cuts[ncuts++] = i;
			r = code_run(d, n, cuts, ncuts);
			if (m.violation && !r.verdict)
				bad = why("model: violation in the line at %zu..%zu, code: none",
					  m.bad_start, m.bad_end);
			else if (!m.violation && r.verdict)
				bad = why("model: no violation, code: %s at %zu",
					  verdict_name(r.verdict), r.at);
			else if (r.verdict && r.verdict != m.verdict)
				bad = why("code: %s, model: %s",
					  verdict_name(r.verdict),
					  verdict_name(m.verdict));
			else if (r.verdict && (r.at < m.bad_start ||
					       r.at > m.bad_end))
				bad = why("code: violation at %zu, model: first bad line at %zu..%zu",
					  r.at, m.bad_start, m.bad_end);
			else if (!r.verdict &&
				 (r.cmds != m.lines || r.phase != STG_PLAIN))
				bad = why("code: %u lines, phase %s; model: %u lines",
					  r.cmds, phase_name(r.phase), m.lines);
			if (bad && !wrong++)
				snprintf(first, sizeof(first),
					 "dialogue %u \"%s\" (%s): %s", iter,
					 escape((const char *)d, n, ESCAPE_MAX),
					 show_cuts(cuts, ncuts, n), bad);
		}
	}
	if (wrong)
		return why("%u of %u runs disagree; first: %s", wrong,
			   RAND_DIALOGUES * RAND_SEGMENTATIONS, first);
	/* a generator that lost its balance would test little */
	if (*clean < RAND_DIALOGUES / 5 || *dirty < RAND_DIALOGUES / 5)
		return why("unbalanced dialogues: %u clean, %u with a violation",
			   *clean, *dirty);
	return NULL;
}

int main(void)
{
	unsigned int clean = 0, dirty = 0;
	char name[256];
	const char *r;
	size_t i;

	/* the run-time buffers of the cases */
	memcpy(long_ehlo, "EHLO ", 5);
	for (i = 0; i < LONG_ARG; i++)
		long_ehlo[5 + i] = 'a' + i % 26;
	memcpy(long_ehlo + 5 + LONG_ARG, "\r\n", 3);
	memcpy(max_line, "NOOP ", 5);
	memset(max_line + 5, 'x', SMTP_LINE_MAX - 6);
	memcpy(max_line + SMTP_LINE_MAX - 1, "\r\n", 3);
	memcpy(exim_split, "NOOP ", 5);
	memset(exim_split + 5, 'x', 16384 - 5);
	strcpy(exim_split + 16384, "MAIL FROM:<spy@client.test>\r\n");
	for (i = 0; i < sizeof(long_hello); i++)
		long_hello[i] = (char)(i * 37 + 11);
	memcpy(long_hello, "\x16\x03\x01\x05\x70\x01\x00\x05\x6c\x03\x03", 11);
	memcpy(long_hello + 100, "\r\nMAIL FROM:<a@b>\r\n\rX\n", 22);

	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		report(cases[i].name, run_case(&cases[i]));

	for (i = 0; i < sizeof(cidr_cases) / sizeof(*cidr_cases); i++) {
		const struct cidr_case *t = &cidr_cases[i];

		snprintf(name, sizeof(name), "case 59: %s \"%s\"",
			 t->ok ? "accepts" : "rejects", t->in);
		if (t->ok)
			snprintf(name + strlen(name), sizeof(name) - strlen(name),
				 " as %s/%u, printed %s", t->addr, t->prefixlen,
				 t->text);
		report(name, run_cidr(t));
	}

	r = run_random(&clean, &dirty);
	snprintf(name, sizeof(name),
		 "random: %d dialogues (%u clean, %u with a violation) x %d segmentations agree with the line model",
		 RAND_DIALOGUES, clean, dirty, RAND_SEGMENTATIONS);
	report(name, r);

	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
