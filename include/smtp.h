/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SMTP/STARTTLS protocol logic of starttls-guard: line framing, verbs,
 * reply counting and the upgrade to TLS, one byte at a time.
 *
 * Pure C on __u8/__u16/__u32/__u64 only: it compiles for BPF (included by
 * bpf/starttls_guard.bpf.c) and for the host (unit tests, fuzzing), so the
 * same code is tested natively and runs in the kernel. It does no I/O and
 * keeps no pointer into packets: callers feed it bytes in TCP sequence
 * order, client and server streams separately.
 *
 * Policy ("encrypt", as Postfix's smtpd_tls_security_level=encrypt): before
 * TLS a client line must start with one of the verbs EHLO, HELO, STARTTLS,
 * NOOP, RSET, HELP or QUIT (case-insensitive, followed by a space or the
 * line end). Anything else is a violation: default deny, and so is a line
 * longer than SMTP_LINE_MAX bytes (a server that cuts long lines, as Exim
 * does at 16 KiB, would read the rest as a command). A line ends at LF;
 * a CR must be followed by LF (a bare CR is a violation, so that no server
 * can frame the stream differently from us). After STARTTLS the client must
 * stay silent until the reply to it; a 220 reply must be followed by a TLS
 * handshake record (16 03 0x); any other reply returns to plaintext rules.
 * The server must answer that record with a handshake record of its own,
 * or an alert: then the handshake failed and the server reads plaintext
 * again, so does the guard. The server's final replies are counted
 * against the client's commands: one that answers no command (but a 421,
 * the one reply servers send unasked, as they close) is a violation.
 */
#ifndef STG_SMTP_H
#define STG_SMTP_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Where a connection is. The first four are protocol phases driven by
 * the bytes; the others are set by the guard. From STG_TLS on, payload is
 * no longer judged. */
enum stg_phase {
	STG_PLAIN = 0,		/* before TLS: only the allowed verbs */
	STG_STARTTLS_SENT = 1,	/* STARTTLS sent, its reply not seen yet */
	STG_TLS_GO = 2,		/* 220 go-ahead seen, TLS record expected */
	STG_TLS_HELLO = 3,	/* client's handshake record seen, the
				 * server's answer not yet */
	STG_PICKUP_TLS = 4,	/* picked up mid-stream with a TLS record:
				 * TLS once the other side sends one too */
	STG_TLS = 5,		/* both sent handshake records: encrypted,
				 * not parsed */
	STG_EXEMPT = 6,		/* exempt host (or picked up with
				 * --midstream pass): passed, not parsed */
	STG_BLOCKED = 7,	/* reset: every further packet is dropped */
	STG_MONITORED = 8,	/* violation seen in monitor mode: passed */
};

/* Result of feeding bytes. Values other than SMTP_OK are violations and
 * double as reset reasons (enum stg_reason in starttls_guard.h). */
enum smtp_verdict {
	SMTP_OK = 0,
	SMTP_V_PLAINTEXT_COMMAND = 1,	/* a verb other than the allowed ones */
	SMTP_V_STARTTLS_INJECTION = 2,	/* client bytes before STARTTLS's reply */
	SMTP_V_NOT_TLS_AFTER_220 = 3,	/* non-TLS client bytes after the 220 */
	SMTP_V_RESPONSE_INJECTION = 4,	/* server bytes between 220 and hello */
	SMTP_V_TLS_WITHOUT_GO_AHEAD = 5, /* a TLS record before a 220 to
					 * STARTTLS */
	SMTP_V_AFTER_REFUSED = 6,	/* a plaintext violation after STARTTLS
					 * was refused or its handshake failed */
	SMTP_V_UNSOLICITED_REPLY = 7,	/* a server reply to no command */
	SMTP_V_SERVER_NOT_TLS = 8,	/* the server's answer to the client's
					 * handshake record is no TLS record */
	SMTP_V_MAX,
};

/* What a server segment made happen, besides violations (flags) */
#define SMTP_EV_REFUSED 0x1	/* a non-220 reply to STARTTLS */
#define SMTP_EV_TLS_FAILED 0x2	/* a server answer to the client's
				 * handshake record that is not one */

/* Client line sub-states. */
enum smtp_cline {
	SMTP_CL_VERB = 0,	/* reading the verb, s->verb holds it so far */
	SMTP_CL_ARGS = 1,	/* allowed verb seen, skipping to the line end */
	SMTP_CL_CR = 2,		/* CR seen, LF must follow */
};

/* Verbs, uppercased and packed little-endian into a __u64 as
 * smtp_client_byte() builds them, so that a verb compares in one go. */
#define SMTP_PACK4(a, b, c, d)                                            \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24)
#define SMTP_VERB_EHLO SMTP_PACK4('E', 'H', 'L', 'O')
#define SMTP_VERB_HELO SMTP_PACK4('H', 'E', 'L', 'O')
#define SMTP_VERB_NOOP SMTP_PACK4('N', 'O', 'O', 'P')
#define SMTP_VERB_RSET SMTP_PACK4('R', 'S', 'E', 'T')
#define SMTP_VERB_HELP SMTP_PACK4('H', 'E', 'L', 'P')
#define SMTP_VERB_QUIT SMTP_PACK4('Q', 'U', 'I', 'T')
#define SMTP_VERB_STARTTLS                                                \
	(SMTP_PACK4('S', 'T', 'A', 'R') | SMTP_PACK4('T', 'T', 'L', 'S') << 32)
#define SMTP_VERB_MAX 8 /* bytes in the longest allowed verb */
/* Bytes a client line may have before its LF: room for long EHLO
 * arguments, less than any server's line buffer (Exim 16 KiB, sendmail
 * 12 KiB), past which the rest of a line could be read as a command. */
#define SMTP_LINE_MAX 4096

struct smtp_state {
	__u64 verb;		/* client verb so far, packed as above */
	__u32 cmds;		/* client command lines completed */
	__u32 replies;		/* final replies to commands (greeting excluded) */
	__u32 starttls_cmd;	/* number of the STARTTLS command awaiting reply */
	__u16 cli_pos;		/* bytes of the verb read so far */
	__u16 cli_len;		/* bytes of the line read so far */
	__u16 srv_code;		/* reply code being read */
	enum stg_phase phase;
	__u8 cli_line;		/* enum smtp_cline */
	__u8 srv_pos;		/* bytes into the server line (saturates at 4) */
	__u8 srv_flags;		/* SMTP_SF_* */
	__u8 hello;		/* TLS record header bytes seen after 220 */
};

#define SMTP_SF_GREETED 0x01	/* the greeting's final line was seen */
#define SMTP_SF_MORE 0x02	/* current server line is a continuation */
#define SMTP_SF_BAD 0x04	/* current server line is not a reply line */
#define SMTP_SF_REFUSED 0x08	/* STARTTLS was refused, or its handshake
				 * failed: later violations say so */
#define SMTP_SF_PICKUP 0x10	/* picked up mid-stream: replies to commands
				 * from before are not known, not counted */
/* the flags that outlive a server line */
#define SMTP_SF_KEEP (SMTP_SF_GREETED | SMTP_SF_REFUSED | SMTP_SF_PICKUP)

/*
 * The verifier walks every path through the per-byte code once for each
 * byte of a chunk, so that code is branch-free except where a line ends
 * or a violation leaves: flags are computed as 0/1 values with these
 * helpers and combined with arithmetic. (On the host they cost nothing.)
 */

/* Hide a value from the optimiser, which would otherwise turn the
 * arithmetic below back into compares and branches. */
#define SMTP_OPAQUE(x) asm volatile("" : "+r"(x))

/* 1 when x != 0 */
static __always_inline __u64 smtp_nz(__u64 x)
{
	__u64 y = x | (0 - x);

	SMTP_OPAQUE(y);
	return y >> 63;
}

/* 1 when a == b */
static __always_inline __u64 smtp_eq(__u64 a, __u64 b)
{
	return 1 ^ smtp_nz(a ^ b);
}

/* 1 when a < b; both below 2^63 */
static __always_inline __u64 smtp_lt(__u64 a, __u64 b)
{
	__u64 d = a - b;

	SMTP_OPAQUE(d);
	return d >> 63;
}

/* bit ? a : b */
static __always_inline __u64 smtp_sel(__u64 bit, __u64 a, __u64 b)
{
	__u64 m = 0 - bit;

	SMTP_OPAQUE(m);
	return (a & m) | (b & ~m);
}

/* 1 when @v is exactly an allowed verb */
static __always_inline __u64 smtp_verb_allowed(__u64 v)
{
	return 1 ^ (smtp_nz(v ^ SMTP_VERB_EHLO) & smtp_nz(v ^ SMTP_VERB_HELO) &
		    smtp_nz(v ^ SMTP_VERB_STARTTLS) &
		    smtp_nz(v ^ SMTP_VERB_NOOP) & smtp_nz(v ^ SMTP_VERB_RSET) &
		    smtp_nz(v ^ SMTP_VERB_HELP) & smtp_nz(v ^ SMTP_VERB_QUIT));
}

/* 1 when the first @len (1..8) bytes of @v start an allowed verb */
static __always_inline __u64 smtp_verb_prefix_ok(__u64 v, __u32 len)
{
	__u64 m = len >= 8 ? ~0ULL : (1ULL << (8 * len)) - 1;

	return 1 ^ (smtp_nz((v ^ SMTP_VERB_EHLO) & m) &
		    smtp_nz((v ^ SMTP_VERB_HELO) & m) &
		    smtp_nz((v ^ SMTP_VERB_STARTTLS) & m) &
		    smtp_nz((v ^ SMTP_VERB_NOOP) & m) &
		    smtp_nz((v ^ SMTP_VERB_RSET) & m) &
		    smtp_nz((v ^ SMTP_VERB_HELP) & m) &
		    smtp_nz((v ^ SMTP_VERB_QUIT) & m));
}

/* The client starts a new line. */
static __always_inline void smtp_client_new_line(struct smtp_state *s)
{
	s->verb = 0;
	s->cli_pos = 0;
	s->cli_len = 0;
	s->cli_line = SMTP_CL_VERB;
}

/* A client command line ended (at its LF). */
static __always_inline void smtp_client_line_end(struct smtp_state *s)
{
	__u64 tls = smtp_eq(s->verb, SMTP_VERB_STARTTLS);

	s->cmds++;
	/* STARTTLS: remember which command it is, wait for its reply. */
	s->starttls_cmd = smtp_sel(tls, s->cmds, s->starttls_cmd);
	s->phase = tls * STG_STARTTLS_SENT;
	smtp_client_new_line(s);
}

/* 1 when bytes of this direction are no longer parsed: the client's from
 * its handshake record header on, the server's from its own. */
static __always_inline int smtp_done(const struct smtp_state *s, int c2s)
{
	return s->phase >= STG_TLS_HELLO + !c2s;
}

/* A client byte after STARTTLS: nothing may come before the reply; after
 * a 220, a TLS record header: handshake (22), version 3.0 to 3.4. */
static __always_inline enum smtp_verdict
smtp_client_upgrade_byte(struct smtp_state *s, __u8 c)
{
	__u64 h = s->hello;

	if (s->phase == STG_STARTTLS_SENT)
		return SMTP_V_STARTTLS_INJECTION;
	if ((smtp_eq(h, 0) & smtp_nz(c ^ 0x16)) |
	    (smtp_eq(h, 1) & smtp_nz(c ^ 0x03)) |
	    (smtp_eq(h, 2) & (1 ^ smtp_lt(c, 0x05))))
		return SMTP_V_NOT_TLS_AFTER_220;
	s->hello = h + 1;
	s->phase = smtp_sel(smtp_eq(h, 2), STG_TLS_HELLO, s->phase);
	return SMTP_OK;
}

/*
 * Feed one client byte. Returns SMTP_OK or the violation it makes, to be
 * named by smtp_client_name(). Only while !smtp_done(s, 1). After a
 * packet, call smtp_client_end().
 */
static __always_inline enum smtp_verdict smtp_client_byte(struct smtp_state *s,
							  __u8 c)
{
	__u64 lf = smtp_eq(c, '\n'), cr = smtp_eq(c, '\r');
	__u64 line = s->cli_line, pos = s->cli_pos, len = s->cli_len;
	__u64 in_verb = smtp_eq(line, SMTP_CL_VERB);
	__u64 in_cr = smtp_eq(line, SMTP_CL_CR);
	/* a byte that ends the verb, when one is being read */
	__u64 term = lf | cr | (smtp_eq(c, ' ') & in_verb);
	/* a byte that adds to the verb */
	__u64 add = in_verb & (1 ^ term);
	__u64 lower = smtp_lt(c - 'a' + 256, 256 + 26) & smtp_lt('a' - 1, c);
	__u64 u = c - 32 * lower;

	if (s->phase != STG_PLAIN)
		return smtp_client_upgrade_byte(s, c);
	/* a bare CR; a complete verb that is not exactly an allowed one
	 * (an empty verb included); a verb longer than any allowed; a line
	 * too long */
	if ((in_cr & (1 ^ lf)) |
	    (in_verb & term & (1 ^ smtp_verb_allowed(s->verb))) |
	    (add & (1 ^ smtp_lt(pos, SMTP_VERB_MAX))) |
	    ((1 ^ lf) & (1 ^ smtp_lt(len, SMTP_LINE_MAX))))
		return SMTP_V_PLAINTEXT_COMMAND;
	if (lf) {
		smtp_client_line_end(s);
		return SMTP_OK;
	}
	/* Uppercased; a NUL becomes 0x80, which no verb has. */
	u |= 0x80 & (0 - (1 ^ smtp_nz(c)));
	s->verb |= (u << (8 * (pos & 7))) & (0 - add);
	s->cli_pos = pos + add;
	s->cli_len = len + 1;
	s->cli_line = smtp_sel(cr, SMTP_CL_CR,
			       smtp_sel(add, SMTP_CL_VERB, SMTP_CL_ARGS));
	return SMTP_OK;
}

/* After the bytes of a packet: a verb left unfinished must already be the
 * start of an allowed one ("MA" is a violation before "IL" arrives). */
static __always_inline enum smtp_verdict smtp_client_end(struct smtp_state *s)
{
	if (s->phase == STG_PLAIN && s->cli_line == SMTP_CL_VERB &&
	    s->cli_pos && !smtp_verb_prefix_ok(s->verb, s->cli_pos))
		return SMTP_V_PLAINTEXT_COMMAND;
	return SMTP_OK;
}

/* Name the client's violation @v: a "verb" that starts with a TLS
 * record's first byte is a handshake without the go-ahead; after a
 * refused STARTTLS a plaintext violation says so (operators then see
 * that their TLS outage is what stops mail). Called once, after the
 * per-byte code, to keep that code small. */
static __always_inline enum smtp_verdict
smtp_client_name(const struct smtp_state *s, enum smtp_verdict v)
{
	if (v != SMTP_V_PLAINTEXT_COMMAND)
		return v;
	if (s->cli_line == SMTP_CL_VERB && (s->verb & 0xff) == 0x16)
		return SMTP_V_TLS_WITHOUT_GO_AHEAD;
	if (s->srv_flags & SMTP_SF_REFUSED)
		return SMTP_V_AFTER_REFUSED;
	return v;
}

/* A final reply answered command number s->replies. */
static __always_inline void smtp_reply(struct smtp_state *s, __u16 code,
				       int *ev)
{
	if (s->phase != STG_STARTTLS_SENT || s->replies != s->starttls_cmd)
		return;
	s->starttls_cmd = 0;
	if (code == 220) {
		s->phase = STG_TLS_GO;
		return;
	}
	s->phase = STG_PLAIN;
	s->srv_flags |= SMTP_SF_REFUSED;
	*ev |= SMTP_EV_REFUSED;
}

/* A server line ended (at its LF). A final reply line answers the next
 * command waiting for one; the first is the greeting. Returns
 * SMTP_V_UNSOLICITED_REPLY for a final reply with no command waiting (a
 * forged 220 must not pass for the go-ahead), else SMTP_OK; *ev gets
 * SMTP_EV_REFUSED when it refused STARTTLS. */
static __always_inline enum smtp_verdict smtp_server_line_end(struct smtp_state *s,
							      int *ev)
{
	__u8 f = s->srv_flags, final = s->srv_pos >= 3 &&
				      !(f & (SMTP_SF_MORE | SMTP_SF_BAD));
	__u16 code = s->srv_code;

	s->srv_pos = 0;
	s->srv_code = 0;
	s->srv_flags &= SMTP_SF_KEEP;
	if (!final)
		return SMTP_OK;
	if (!(f & SMTP_SF_GREETED)) {
		s->srv_flags |= SMTP_SF_GREETED;
	} else if (s->replies < s->cmds) {
		s->replies++;
		smtp_reply(s, code, ev);
	} else if (code != 421 && !(f & SMTP_SF_PICKUP)) {
		return SMTP_V_UNSOLICITED_REPLY;
	}
	return SMTP_OK;
}

/* The first server byte after the client's handshake record header: a
 * handshake record of the server's means TLS; an alert means the
 * handshake failed and the server reads plaintext again, from a new line
 * (*ev gets SMTP_EV_TLS_FAILED); anything else is a violation. The
 * alert's bytes begin a server line that is no reply: a reply the server
 * adds up to its LF (IronPort's 454) answers nothing. */
static __always_inline enum smtp_verdict smtp_server_answer(struct smtp_state *s,
							    __u8 c, int *ev)
{
	if (c == 0x16) {
		s->phase = STG_TLS;
		return SMTP_OK;
	}
	if (c != 0x15)
		return SMTP_V_SERVER_NOT_TLS;
	s->phase = STG_PLAIN;
	s->hello = 0;
	s->srv_flags |= SMTP_SF_REFUSED;
	smtp_client_new_line(s);
	*ev |= SMTP_EV_TLS_FAILED;
	return SMTP_OK;
}

/*
 * Feed one server byte. Returns SMTP_OK or a violation; *ev gets the
 * SMTP_EV_* flags of what happened. Only while !smtp_done(s, 0); in
 * phase STG_TLS_HELLO the first byte goes to smtp_server_answer() (a
 * phase only the client's bytes enter, so at a segment's start).
 */
static __always_inline enum smtp_verdict smtp_server_byte(struct smtp_state *s,
							  __u8 c, int *ev)
{
	__u64 pos = s->srv_pos;
	__u64 in_code = smtp_lt(pos, 3);
	__u64 digit = smtp_lt(c, '0' + 10) & smtp_lt('0' - 1, c);

	if (s->phase == STG_TLS_GO)
		return SMTP_V_RESPONSE_INJECTION;
	if (c == '\n')
		return smtp_server_line_end(s, ev);
	/* three digits, then '-' on all but the last line of a reply */
	s->srv_code = smtp_sel(in_code, s->srv_code * 10 + ((c - '0') & 0xf),
			       s->srv_code);
	s->srv_flags |= (in_code & (1 ^ digit)) * SMTP_SF_BAD |
			(smtp_eq(pos, 3) & smtp_eq(c, '-')) * SMTP_SF_MORE;
	s->srv_pos = pos + smtp_lt(pos, 4);
	return SMTP_OK;
}

/* Start a connection's protocol state. @greeted: the connection is picked
 * up mid-stream (no handshake was seen): after its greeting, with replies
 * to earlier commands perhaps still to come. */
static __always_inline void smtp_init(struct smtp_state *s, int greeted)
{
	__builtin_memset(s, 0, sizeof(*s));
	if (greeted)
		s->srv_flags = SMTP_SF_GREETED | SMTP_SF_PICKUP;
}

#endif /* STG_SMTP_H */
