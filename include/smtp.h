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
 *
 * Policy "auth-only" (as Postfix's smtpd_tls_auth_only): only AUTH before
 * TLS is a violation (with the framing rules above); message bodies are
 * followed (DATA, its 354, up to the loosest end of data any server takes)
 * and BDAT chunks skipped by count where the server offered CHUNKING.
 * Verbs configured as STARTTLS's synonyms (smtp_upgrade) upgrade as it
 * does; "one-way" (no server bytes seen) takes a TLS record after
 * STARTTLS as the go-ahead's proof.
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
	STG_PICKUP_TLS = 4,	/* picked up mid-stream with bytes that are
				 * not text: TLS once the other side's are
				 * not either (smtp_pickup_byte meanwhile) */
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
	SMTP_V_AMBIGUOUS_END = 9,	/* a message body's end that servers
					 * read differently (auth-only) */
	SMTP_V_DATA_PIPELINING = 10,	/* client bytes after DATA before its
					 * reply (auth-only): body or commands,
					 * as the server decides */
	SMTP_V_MAX,
};

/* What a server segment made happen, besides violations (flags) */
#define SMTP_EV_REFUSED 0x1	/* a non-220 reply to STARTTLS */
#define SMTP_EV_TLS_FAILED 0x2	/* a server answer to the client's
				 * handshake record that is not one */

/* Client line sub-states. */
enum smtp_cline {
	SMTP_CL_VERB = 0,	/* reading the verb, s->verb holds it so far */
	SMTP_CL_ARGS = 1,	/* verb seen, reading to the line end */
	SMTP_CL_CR = 2,		/* CR seen, LF must follow */
};

/* Policies, per connection (struct smtp_state.policy). */
#define SMTP_P_AUTH_ONLY 0x1	/* only AUTH before TLS is a violation (as
				 * Postfix's smtpd_tls_auth_only): mail may
				 * be sent in plaintext; message bodies
				 * (DATA, BDAT) are followed, not judged */
#define SMTP_P_ONE_WAY 0x2	/* the server's packets are not seen:
				 * STARTTLS and a TLS hello upgrade */
#define SMTP_P_NO_UPGRADE 0x4	/* picked up mid-stream: which reply answers
				 * which command is not known, so no reply
				 * can be the go-ahead; STARTTLS is a
				 * violation (the client connects again) */

/* Verbs, uppercased and packed little-endian into a __u64 as
 * smtp_client_byte() builds them (bytes 8 to 15 in a second one), so
 * that a verb compares in one go. */
#define SMTP_PACK4(a, b, c, d)                                            \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24)
#define SMTP_VERB_EHLO SMTP_PACK4('E', 'H', 'L', 'O')
#define SMTP_VERB_HELO SMTP_PACK4('H', 'E', 'L', 'O')
#define SMTP_VERB_NOOP SMTP_PACK4('N', 'O', 'O', 'P')
#define SMTP_VERB_RSET SMTP_PACK4('R', 'S', 'E', 'T')
#define SMTP_VERB_HELP SMTP_PACK4('H', 'E', 'L', 'P')
#define SMTP_VERB_QUIT SMTP_PACK4('Q', 'U', 'I', 'T')
#define SMTP_VERB_AUTH SMTP_PACK4('A', 'U', 'T', 'H')
#define SMTP_VERB_DATA SMTP_PACK4('D', 'A', 'T', 'A')
#define SMTP_VERB_BDAT SMTP_PACK4('B', 'D', 'A', 'T')
#define SMTP_VERB_STARTTLS                                                \
	(SMTP_PACK4('S', 'T', 'A', 'R') | SMTP_PACK4('T', 'T', 'L', 'S') << 32)
#define SMTP_VERB_MAX 16 /* bytes of a verb kept (and the longest allowed) */
/* Bytes a client line may have before its LF: room for long EHLO
 * arguments, less than any server's line buffer (Exim 16 KiB, sendmail
 * 12 KiB), past which the rest of a line could be read as a command. */
#define SMTP_LINE_MAX 4096
/* The largest BDAT chunk followed; a larger size is a violation. */
#define SMTP_BDAT_MAX 0x7fffffffU

#define SMTP_UPGRADE_MAX 2
/* Verbs taken as STARTTLS besides it (Exchange's X-ANONYMOUSTLS), packed
 * as smtp_state.verb and verb2; an unused slot is zero. */
struct smtp_upgrade {
	__u64 verb[SMTP_UPGRADE_MAX][2];
};

/* A message body being followed (struct smtp_state.body). */
enum smtp_body {
	SMTP_B_NONE = 0,	/* not in a body */
	SMTP_B_START = 1,	/* at a line's start */
	SMTP_B_MID = 2,		/* inside a line */
	SMTP_B_DOT = 3,		/* "." at a line's start */
	SMTP_B_DOTCR = 4,	/* "." CR at a line's start */
	SMTP_B_CR = 5,		/* a CR not after such a "." */
};

struct smtp_state {
	__u64 verb;		/* client verb so far, packed as above */
	__u64 verb2;		/* its bytes 8 to 15 */
	__u32 cmds;		/* client command lines completed */
	__u32 replies;		/* final replies to commands (greeting excluded) */
	__u32 starttls_cmd;	/* number of the STARTTLS command awaiting reply */
	__u32 data_cmd;		/* number of the DATA command awaiting reply */
	__u32 skip;		/* BDAT chunk bytes still to come */
	__u32 chunk;		/* the BDAT size being read */
	__u16 cli_pos;		/* bytes of the verb read so far */
	__u16 cli_len;		/* bytes of the line read so far */
	__u16 srv_code;		/* reply code being read */
	enum stg_phase phase;
	__u8 cli_line;		/* enum smtp_cline */
	__u8 vbits;		/* SMTP_VB_* of the line's verb */
	__u8 bdat;		/* BDAT argument: 0 none yet, 1 digits, 2
				 * after them, 3 bad */
	__u8 body;		/* enum smtp_body */
	__u8 policy;		/* SMTP_P_* */
	__u8 srv_pos;		/* bytes into the server line (saturates at 13) */
	__u8 srv_kw;		/* bytes of "CHUNKING" matched after the code */
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
#define SMTP_SF_CHUNKING 0x20	/* the server offered CHUNKING (a line
				 * "250-CHUNKING" or "250 CHUNKING"): it
				 * reads BDAT chunks as chunks */
/* the flags that outlive a server line */
#define SMTP_SF_KEEP (SMTP_SF_GREETED | SMTP_SF_REFUSED | SMTP_SF_PICKUP | \
		      SMTP_SF_CHUNKING)
/* "CHUNKING", packed as verbs are */
#define SMTP_KW_CHUNKING                                                  \
	(SMTP_PACK4('C', 'H', 'U', 'N') | SMTP_PACK4('K', 'I', 'N', 'G') << 32)

/*
 * The verifier walks every path through the per-byte code once for each
 * byte of a chunk, so that code is branch-free except where a line ends,
 * a verb ends or a violation leaves: flags are computed as 0/1 values
 * with these helpers and combined with arithmetic. (On the host they cost
 * nothing.) State lives in the connection's map value, which the verifier
 * does not follow: paths that only store different values there meet
 * again.
 */

/* Hide a value from the optimiser, which would otherwise turn the
 * arithmetic below back into compares and branches. */
#define SMTP_OPAQUE(x) asm volatile("" : "+r"(x))
/* After a branch that stores different values: read them back from the
 * state, not from registers the paths set apart (the verifier then meets
 * the same registers where the paths join). */
#define SMTP_JOIN() asm volatile("" ::: "memory")

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
		    smtp_nz(v ^ SMTP_VERB_NOOP) & smtp_nz(v ^ SMTP_VERB_RSET) &
		    smtp_nz(v ^ SMTP_VERB_HELP) & smtp_nz(v ^ SMTP_VERB_QUIT));
}

/* 1 when the first @len bytes of the verb (@v, @v2) are those of @w0, @w1 */
static __always_inline int smtp_prefix(__u64 v, __u64 v2, __u32 len, __u64 w0,
				       __u64 w1)
{
	__u64 m0 = len >= 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
	__u64 m1 = len >= 16 ? ~0ULL :
		   len <= 8  ? 0 : (1ULL << (8 * (len - 8))) - 1;

	return !((v ^ w0) & m0) && !((v2 ^ w1) & m1);
}

/* What the client's verb (complete or not) is, as SMTP_VB_* bits, under
 * the policy @auth_only (a constant: the code for each is apart).
 * Branch-free: computed for every byte, kept where the verb ends. */
#define SMTP_VB_BAD 0x1		/* a violation under the connection's policy:
				 * under encrypt anything but the allowed
				 * verbs and the upgrade, under auth-only AUTH */
#define SMTP_VB_UPGRADE 0x2	/* STARTTLS, or a verb configured as one */
#define SMTP_VB_DATA 0x4
#define SMTP_VB_BDAT 0x8

static __always_inline __u64 smtp_verb_bits(const struct smtp_state *s,
					    const struct smtp_upgrade *up,
					    const int auth_only)
{
	__u64 v = s->verb, v2 = s->verb2, one = smtp_eq(v2, 0);
	__u64 upgrade = smtp_eq(v, SMTP_VERB_STARTTLS) & one;

	for (int i = 0; i < SMTP_UPGRADE_MAX; i++)
		upgrade |= smtp_nz(up->verb[i][0]) & smtp_eq(v, up->verb[i][0]) &
			   smtp_eq(v2, up->verb[i][1]);
	if (!auth_only) {
		upgrade &= 1 ^ smtp_nz(s->policy & SMTP_P_NO_UPGRADE);
		return (1 ^ (upgrade | (smtp_verb_allowed(v) & one))) |
		       upgrade << 1;
	}
	return (smtp_eq(v, SMTP_VERB_AUTH) & one) | upgrade << 1 |
	       (smtp_eq(v, SMTP_VERB_DATA) & one) << 2 |
	       (smtp_eq(v, SMTP_VERB_BDAT) & one) << 3;
}

/* The client starts a new line. */
static __always_inline void smtp_client_new_line(struct smtp_state *s)
{
	s->verb = 0;
	s->verb2 = 0;
	s->cli_pos = 0;
	s->cli_len = 0;
	s->cli_line = SMTP_CL_VERB;
	s->vbits = 0;
	s->bdat = 0;
	s->chunk = 0;
}

/* A client command line ended (at its LF). Returns SMTP_OK, or
 * SMTP_V_PLAINTEXT_COMMAND for a BDAT whose size is not plain digits. A
 * BDAT chunk, or a body, is not read by smtp_client_byte(): see
 * smtp_client_feed(). */
static __always_inline enum smtp_verdict
smtp_client_line_end(struct smtp_state *s, const int auth_only)
{
	__u64 vb = s->vbits, cmds = s->cmds + 1;
	__u64 upgrade = (vb >> 1) & 1, bdat = (vb >> 3) & 1;

	if (auth_only) {
		/* BDAT: its chunk follows at once, whatever the reply, where
		 * the server offered CHUNKING; one that did not reads the
		 * chunk as commands */
		if (bdat & (((1 ^ smtp_eq(s->bdat, 1)) & (1 ^ smtp_eq(s->bdat, 2))) |
			    (1 ^ smtp_nz(s->srv_flags & SMTP_SF_CHUNKING))))
			return SMTP_V_PLAINTEXT_COMMAND;
		s->skip = smtp_sel(bdat, s->chunk, 0);
		/* DATA: a body follows a 354 */
		if (vb & SMTP_VB_DATA)
			s->data_cmd = cmds;
	}
	s->cmds = cmds;
	/* STARTTLS: remember which command it is, wait for its reply. (The
	 * server's bytes write these too: only written when set.) */
	if (upgrade) {
		s->starttls_cmd = cmds;
		s->phase = STG_STARTTLS_SENT;
	}
	smtp_client_new_line(s);
	SMTP_JOIN();
	return SMTP_OK;
}

/* 1 when bytes of this direction are no longer parsed: the client's from
 * its handshake record header on, the server's from its own. */
static __always_inline int smtp_done(const struct smtp_state *s, int c2s)
{
	return s->phase >= STG_TLS_HELLO + !c2s;
}

/* A client byte after STARTTLS: nothing may come before the reply; after
 * a 220, a TLS record header: handshake (22), version 3.0 to 3.4. With
 * one-way (no reply to wait for), the header ends it. */
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
	s->phase = smtp_sel(smtp_eq(h, 2),
			    smtp_sel(s->policy & SMTP_P_ONE_WAY, STG_TLS,
				     STG_TLS_HELLO),
			    s->phase);
	return SMTP_OK;
}

/*
 * A byte of a message body (after DATA and its 354), under auth-only.
 * The body ends at a line "." - at the loosest end any server takes (LF
 * "." CR LF, LF "." LF); commands follow. A "." after a bare CR,
 * or "." CR not followed by LF, would end it for some servers and not for
 * others (SMTP smuggling): a violation.
 */
static __always_inline enum smtp_verdict smtp_body_byte(struct smtp_state *s,
							__u8 c)
{
	__u64 b = s->body, lf = smtp_eq(c, '\n'), cr = smtp_eq(c, '\r');
	__u64 dot = smtp_eq(c, '.'), at_dot = smtp_eq(b, SMTP_B_DOT);
	__u64 at_dotcr = smtp_eq(b, SMTP_B_DOTCR);

	if ((at_dotcr & (1 ^ lf)) | (smtp_eq(b, SMTP_B_CR) & dot))
		return SMTP_V_AMBIGUOUS_END;
	if ((at_dot | at_dotcr) & lf) {
		/* the "." line is a command, answered */
		s->body = SMTP_B_NONE;
		s->cmds++;
		smtp_client_new_line(s);
		return SMTP_OK;
	}
	s->body = smtp_sel(lf, SMTP_B_START,
		  smtp_sel(cr, smtp_sel(at_dot, SMTP_B_DOTCR, SMTP_B_CR),
		  smtp_sel(dot & smtp_eq(b, SMTP_B_START), SMTP_B_DOT,
			   SMTP_B_MID)));
	return SMTP_OK;
}

/*
 * Feed one client command byte (not in a body or a BDAT chunk: see
 * smtp_client_feed). Returns SMTP_OK or the violation it makes, to be
 * named by smtp_client_name(). Only while !smtp_done(s, 1). @up: the
 * verbs taken as STARTTLS; @auth_only: the connection's policy (a
 * constant). After a packet, call smtp_client_end().
 */
static __always_inline enum smtp_verdict
smtp_client_byte(struct smtp_state *s, __u8 c, const struct smtp_upgrade *up,
		 const int auth_only)
{
	__u64 lf = smtp_eq(c, '\n'), cr = smtp_eq(c, '\r');
	__u64 line = s->cli_line, pos = s->cli_pos, len = s->cli_len;
	__u64 in_verb = smtp_eq(line, SMTP_CL_VERB);
	__u64 in_cr = smtp_eq(line, SMTP_CL_CR);
	/* a byte that ends the verb, when one is being read */
	/* Whitespace: a space; under auth-only any a server takes (Postfix
	 * splits on tabs too and skips it before the verb: " AUTH" and
	 * "AUTH\tPLAIN" are AUTH), under encrypt other whitespace is no
	 * allowed verb's. */
	__u64 ws = smtp_eq(c, ' ') |
		   (auth_only ? smtp_eq(c, '\t') | smtp_eq(c, 0x0b) |
				smtp_eq(c, 0x0c) : 0);
	__u64 lead = auth_only ? in_verb & smtp_eq(pos, 0) & ws : 0;
	__u64 term = lf | cr | (ws & in_verb & (1 ^ lead));
	/* a byte that adds to the verb, and which word it goes to */
	__u64 add = in_verb & (1 ^ term) & (1 ^ lead);
	__u64 lo = smtp_lt(pos, 8), hi = (1 ^ lo) & smtp_lt(pos, SMTP_VERB_MAX);
	__u64 lower = smtp_lt(c - 'a' + 256, 256 + 26) & smtp_lt('a' - 1, c);
	__u64 u = c - 32 * lower;

	__u64 vb;

	/* One-way, after STARTTLS: no reply is seen, a TLS record means it
	 * was a 220, anything else that it was not. (Fields the server's
	 * bytes also write, on another CPU, are written only when they
	 * change: never read, changed and written back per byte.) */
	if (s->phase == STG_STARTTLS_SENT && (s->policy & SMTP_P_ONE_WAY)) {
		if (c == 0x16) {
			s->phase = STG_TLS_GO;
		} else {
			s->phase = STG_PLAIN;
			s->srv_flags |= SMTP_SF_REFUSED;
		}
	}
	SMTP_JOIN();
	if (s->phase != STG_PLAIN)
		return smtp_client_upgrade_byte(s, c);
	/* After DATA, nothing before its reply: a 354 makes the bytes a
	 * body, anything else commands. */
	if (auth_only && s->data_cmd)
		return SMTP_V_DATA_PIPELINING;
	vb = smtp_verb_bits(s, up, auth_only);
	/* a bare CR; a complete verb that is a violation; a verb longer than
	 * any allowed (auth-only: kept to its first SMTP_VERB_MAX bytes); a
	 * line too long */
	if ((in_cr & (1 ^ lf)) | (in_verb & term & vb & SMTP_VB_BAD) |
	    (add & (1 ^ lo) & (1 ^ hi) & !auth_only) |
	    ((1 ^ lf) & (1 ^ smtp_lt(len, SMTP_LINE_MAX))))
		return SMTP_V_PLAINTEXT_COMMAND;
	s->vbits = smtp_sel(in_verb & term, vb, s->vbits);
	if (lf)
		return smtp_client_line_end(s, auth_only);
	if (auth_only) {
		/* A BDAT size, read for any line (looked at only for BDAT):
		 * digits (s->bdat 1), then a space (2); anything else, or too
		 * large, is bad (3). */
		__u64 digit = smtp_lt(c, '0' + 10) & smtp_lt('0' - 1, c);
		__u64 st = s->bdat, chunk = s->chunk;
		__u64 args = smtp_eq(line, SMTP_CL_ARGS) & (1 ^ cr) &
			     smtp_lt(st, 2);

		digit &= smtp_lt(chunk, (SMTP_BDAT_MAX - 9) / 10 + 1);
		s->chunk = smtp_sel(args & digit, chunk * 10 + (c - '0'), chunk);
		s->bdat = smtp_sel(args, smtp_sel(digit, 1,
						   smtp_sel(smtp_eq(st, 1) &
							    smtp_eq(c, ' '),
							    2, 3)),
				   st);
	}
	/* Uppercased; a NUL becomes 0x80, which no verb has. */
	u |= 0x80 & (0 - (1 ^ smtp_nz(c)));
	u <<= 8 * (pos & 7);
	s->verb |= u & (0 - (add & lo));
	s->verb2 |= u & (0 - (add & hi));
	s->cli_pos = pos + add;
	s->cli_len = len + 1;
	s->cli_line = smtp_sel(cr, SMTP_CL_CR,
			       smtp_sel(add | lead, SMTP_CL_VERB, SMTP_CL_ARGS));
	return SMTP_OK;
}

/*
 * A client byte of a connection picked up mid-stream with bytes that are
 * not text, before the server has shown TLS too: TLS records to pass, or
 * a plaintext session that led with a few bytes of junk (the server
 * reads the junk as a bad line, then what follows). A line start (after
 * LF or CR, or the first byte), perhaps after whitespace, with MAIL,
 * RCPT, DATA, BDAT, AUTH, VRFY, EXPN or ETRN (any case) is a violation:
 * in ciphertext, about once in 10^10 bytes. The client line state holds
 * the verb.
 */
static __always_inline enum smtp_verdict smtp_pickup_byte(struct smtp_state *s,
							  __u8 c)
{
	__u64 pos = s->cli_pos, at = smtp_eq(s->cli_line, SMTP_CL_VERB);
	__u64 eol = smtp_eq(c, '\n') | smtp_eq(c, '\r');
	__u64 ws = smtp_eq(c, ' ') | smtp_eq(c, '\t') | smtp_eq(c, 0x0b) |
		   smtp_eq(c, 0x0c);
	__u64 lower = smtp_lt(c - 'a' + 256, 256 + 26) & smtp_lt('a' - 1, c);
	__u64 u = c - 32 * lower;
	__u64 letter = smtp_lt(u - 'A' + 256, 256 + 26) & smtp_lt('A' - 1, u);
	__u64 lead = at & smtp_eq(pos, 0) & ws;
	__u64 add = at & letter & smtp_lt(pos, 4);
	__u64 v = s->verb | ((u << (8 * (pos & 3))) & (0 - add));
	__u64 len = s->cli_len;

	/* a line too long (a server that cuts it, as Exim at 16 KiB, would
	 * read the rest as a line: in ciphertext, LF comes every 256 bytes
	 * or so) */
	if ((1 ^ eol) & (1 ^ smtp_lt(len, SMTP_LINE_MAX)))
		return SMTP_V_PLAINTEXT_COMMAND;
	s->cli_len = (len + 1) & (0 - (1 ^ eol));
	if (add & smtp_eq(pos, 3) &
	    (smtp_eq(v, SMTP_PACK4('M', 'A', 'I', 'L')) |
	     smtp_eq(v, SMTP_PACK4('R', 'C', 'P', 'T')) |
	     smtp_eq(v, SMTP_VERB_DATA) | smtp_eq(v, SMTP_VERB_BDAT) |
	     smtp_eq(v, SMTP_VERB_AUTH) |
	     smtp_eq(v, SMTP_PACK4('V', 'R', 'F', 'Y')) |
	     smtp_eq(v, SMTP_PACK4('E', 'X', 'P', 'N')) |
	     smtp_eq(v, SMTP_PACK4('E', 'T', 'R', 'N'))))
		return SMTP_V_PLAINTEXT_COMMAND;
	s->verb = v & (0 - (1 ^ eol));
	s->cli_pos = (pos + add) & (0 - (1 ^ eol));
	s->cli_line = smtp_sel(eol | lead | add, SMTP_CL_VERB, SMTP_CL_ARGS);
	return SMTP_OK;
}

/* Feed one client byte, in whatever the connection reads: a BDAT chunk
 * (skipped), a message body or commands. Returns SMTP_OK or a violation. */
static __always_inline enum smtp_verdict
smtp_client_feed(struct smtp_state *s, __u8 c, const struct smtp_upgrade *up)
{
	if (!(s->policy & SMTP_P_AUTH_ONLY))
		return smtp_client_byte(s, c, up, 0);
	if (s->skip) {
		s->skip--;
		return SMTP_OK;
	}
	return s->body ? smtp_body_byte(s, c) : smtp_client_byte(s, c, up, 1);
}

/* After the bytes of a packet: a verb left unfinished must not already
 * be a violation ("MA" is one before "IL" arrives; under auth-only, a
 * start of AUTH). */
static __always_inline enum smtp_verdict
smtp_client_end(const struct smtp_state *s, const struct smtp_upgrade *up)
{
	__u64 v, v2;
	__u32 n;
	int ok;

	SMTP_JOIN();
	v = s->verb;
	v2 = s->verb2;
	n = s->cli_pos;
	if (s->phase != STG_PLAIN || s->cli_line != SMTP_CL_VERB || !n ||
	    s->skip || s->body)
		return SMTP_OK;
	if (s->policy & SMTP_P_AUTH_ONLY)
		return n <= 4 && smtp_prefix(v, v2, n, SMTP_VERB_AUTH, 0) ?
			       SMTP_V_PLAINTEXT_COMMAND : SMTP_OK;
	ok = smtp_prefix(v, v2, n, SMTP_VERB_EHLO, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_HELO, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_NOOP, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_RSET, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_HELP, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_QUIT, 0) ||
	     smtp_prefix(v, v2, n, SMTP_VERB_STARTTLS, 0);
	for (int i = 0; i < SMTP_UPGRADE_MAX; i++)
		ok |= up->verb[i][0] &&
		      smtp_prefix(v, v2, n, up->verb[i][0], up->verb[i][1]);
	return ok ? SMTP_OK : SMTP_V_PLAINTEXT_COMMAND;
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
	if (s->data_cmd && s->replies == s->data_cmd) {
		/* DATA: its body follows a 354 */
		s->data_cmd = 0;
		if (code == 354)
			s->body = SMTP_B_START;
	}
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

	f |= SMTP_SF_CHUNKING * (smtp_eq(code, 250) & smtp_eq(s->srv_kw, 8) &
				 (1 ^ smtp_nz(f & SMTP_SF_BAD)));
	s->srv_pos = 0;
	s->srv_code = 0;
	s->srv_kw = 0;
	s->srv_flags = f & SMTP_SF_KEEP;
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
	__u64 pos = s->srv_pos, kw = s->srv_kw, idx = pos - 4;
	__u64 in_code = smtp_lt(pos, 3);
	__u64 digit = smtp_lt(c, '0' + 10) & smtp_lt('0' - 1, c);
	__u64 in_kw = smtp_lt(3, pos) & smtp_lt(pos, 12);
	__u64 lower = smtp_lt(c - 'a' + 256, 256 + 26) & smtp_lt('a' - 1, c);
	__u64 want = (SMTP_KW_CHUNKING >> (8 * (idx & 7))) & 0xff;

	if (s->phase == STG_TLS_GO)
		return SMTP_V_RESPONSE_INJECTION;
	if (c == '\n')
		return smtp_server_line_end(s, ev);
	/* three digits, then '-' on all but the last line of a reply */
	s->srv_code = smtp_sel(in_code, s->srv_code * 10 + ((c - '0') & 0xf),
			       s->srv_code);
	s->srv_flags |= (in_code & (1 ^ digit)) * SMTP_SF_BAD |
			(smtp_eq(pos, 3) & smtp_eq(c, '-')) * SMTP_SF_MORE;
	/* the keyword CHUNKING, alone after the code (a CR may end it) */
	s->srv_kw = smtp_sel(in_kw,
			     kw + (smtp_eq(c - 32 * lower, want) & smtp_eq(kw, idx)),
			     smtp_sel(smtp_eq(pos, 12) & (1 ^ smtp_eq(c, '\r')),
				      0, kw));
	s->srv_pos = pos + smtp_lt(pos, 13);
	return SMTP_OK;
}

#ifndef __bpf__
/* Pack @w (at most SMTP_VERB_MAX bytes, matched case-insensitively) as
 * struct smtp_state's verb and verb2: for struct smtp_upgrade. Returns 0,
 * or -1 when @w is empty, too long, or has a byte no verb has. */
static inline int smtp_pack_verb(const char *w, __u64 out[2])
{
	int i;

	out[0] = out[1] = 0;
	for (i = 0; w[i]; i++) {
		__u64 c = (unsigned char)w[i];

		if (i >= SMTP_VERB_MAX || c <= ' ' || c >= 0x7f)
			return -1;
		if (c >= 'a' && c <= 'z')
			c -= 32;
		out[i / 8] |= c << (8 * (i % 8));
	}
	return i ? 0 : -1;
}
#endif

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
