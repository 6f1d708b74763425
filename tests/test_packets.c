// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests: the real TC program, loaded from the skeleton with private
 * maps (nothing pinned, no interface touched), fed crafted packets through
 * BPF_PROG_TEST_RUN. Each test walks connections through the state machine
 * and checks verdicts, the connection's phase, the counters and, for
 * resets, the RST that comes out (flags, sequence numbers, checksums).
 *
 * Ends with "N passed, N failed". Run as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pkt.h"
#include "starttls_guard.h"
#include "jmp.h"
#include "feed.h"

#define PASS 0xffffffffu /* TC_ACT_UNSPEC: let the packet (and others) go on */
#define OK 0u		 /* TC_ACT_OK: the packet rewritten into an RST */
#define SHOT 2u		 /* TC_ACT_SHOT */

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10
#define F_URG 0x20

static struct starttls_guard_bpf *skel;
static int failed_checks;
static struct pkt out;	/* the last packet as the program left it */
static struct ring_buffer *evbuf; /* the "events" ring buffer */
static struct stg_event evs[64]; /* events read by take_events() */
static int nevs, evs_seen;

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	failed_checks++;
	fputs("    ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* --- set-up -------------------------------------------------------------- */

static void configure(int mode, int def, const int *ports)
{
	struct stg_config cfg = { .mode = mode, .default_action = def };
	__u32 zero = 0;

	for (; *ports; ports++)
		cfg.ports[*ports >> 6] |= 1ULL << (*ports & 63);
	bpf_map_update_elem(bpf_map__fd(skel->maps.settings), &zero, &cfg, 0);
}

/* Set the configuration's flags (STG_CFG_*). */
static void set_flags(__u32 flags)
{
	struct stg_config cfg;
	__u32 zero = 0;
	int fd = bpf_map__fd(skel->maps.settings);

	bpf_map_lookup_elem(fd, &zero, &cfg);
	cfg.flags = flags;
	bpf_map_update_elem(fd, &zero, &cfg, 0);
}

/* Set auth-only on port 25, or the verbs taken as STARTTLS, or one-way. */
static void set_cfg(bool auth_only, const char *upgrade_verb, __u32 flags)
{
	struct stg_config cfg;
	__u32 zero = 0;
	int fd = bpf_map__fd(skel->maps.settings);

	bpf_map_lookup_elem(fd, &zero, &cfg);
	if (auth_only)
		cfg.auth_ports[25 >> 6] |= 1ULL << (25 & 63);
	if (upgrade_verb)
		smtp_pack_verb(upgrade_verb, cfg.upgrade.verb[1]);
	cfg.flags |= flags;
	bpf_map_update_elem(fd, &zero, &cfg, 0);
}

static void host_set(const char *addr, int plen, int action)
{
	struct stg_host_key k = { 0 };
	struct stg_host h = { .action = action };

	if (strchr(addr, ':')) {
		inet_pton(AF_INET6, addr, k.addr);
		k.prefixlen = plen;
	} else {
		k.addr[10] = k.addr[11] = 0xff;
		inet_pton(AF_INET, addr, k.addr + 12);
		k.prefixlen = 96 + plen;
	}
	h.prefixlen = k.prefixlen;
	bpf_map_update_elem(bpf_map__fd(skel->maps.hosts), &k, &h, 0);
}

/* Empty every map between tests and set the default configuration. */
static void reset_maps(void)
{
	static const int port25[] = { 25, 0 };
	int fds[] = { bpf_map__fd(skel->maps.conns),
		      bpf_map__fd(skel->maps.hosts) };
	int ncpu = libbpf_num_possible_cpus();
	__u64 *zeros = calloc(ncpu, sizeof(__u64));
	char next[64];

	for (unsigned int i = 0; i < 2; i++)
		while (!bpf_map_get_next_key(fds[i], NULL, next))
			bpf_map_delete_elem(fds[i], next);
	for (__u32 i = 0; i < STG_C_MAX; i++)
		bpf_map_update_elem(bpf_map__fd(skel->maps.counters), &i,
				    zeros, 0);
	free(zeros);
	zeros = calloc(ncpu, sizeof(struct { __u64 a, b; }));
	bpf_map_update_elem(bpf_map__fd(skel->maps.evlimit), &(__u32){ 0 },
			    zeros, 0);
	free(zeros);
	ring_buffer__consume(evbuf);
	configure(STG_MODE_ENFORCE, STG_ACT_REQUIRE_TLS, port25);
}

static __u64 counter(__u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v = calloc(ncpu, sizeof(__u64)), sum = 0;

	if (!bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &idx, v))
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

static __u64 resets(__u32 reason)
{
	return counter(STG_C_RESETS + reason);
}

/* --- connections --------------------------------------------------------- */

static struct tconn conn4(uint16_t cport)
{
	struct tconn c = { .cport = cport, .sport = 25,
			   .cseq = 1000, .sseq = 50000 };

	c.cli[10] = c.cli[11] = c.srv[10] = c.srv[11] = 0xff;
	inet_pton(AF_INET, "192.0.2.10", c.cli + 12);
	inet_pton(AF_INET, "192.0.2.25", c.srv + 12);
	return c;
}

static struct tconn conn6(uint16_t cport)
{
	struct tconn c = { .v6 = 1, .cport = cport, .sport = 25,
			   .cseq = 7000, .sseq = 90000 };

	inet_pton(AF_INET6, "2001:db8::10", c.cli);
	inet_pton(AF_INET6, "2001:db8::25", c.srv);
	return c;
}

/* Run one packet through the ingress program; the result stays in out.
 * A non-zero gso_size makes it a GSO packet (as GRO, TSO and BIG TCP
 * make them). */
static __u32 run_gso(const struct pkt *p, bool egress, __u32 gso_size)
{
	struct __sk_buff ctx = { .gso_size = gso_size,
				 .gso_segs = gso_size ? 2 : 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b,
		    .data_size_in = p->len, .data_out = out.b,
		    .data_size_out = sizeof(out.b), .repeat = 1,
		    .ctx_in = gso_size ? &ctx : NULL,
		    .ctx_size_in = gso_size ? sizeof(ctx) : 0);
	int fd = bpf_program__fd(egress ? skel->progs.stg_egress
					: skel->progs.stg_ingress);

	if (bpf_prog_test_run_opts(fd, &o)) {
		check(false, "BPF_PROG_TEST_RUN: %s", strerror(errno));
		return 0xdead;
	}
	out.len = o.data_size_out;
	out.l3 = p->l3;
	out.l4 = p->l4;
	return o.retval;
}

static __u32 run(const struct pkt *p, bool egress)
{
	return run_gso(p, egress, 0);
}

/* Send @s (length @n, or strlen) from the client or server of @c with the
 * next sequence numbers; advance them. Returns the verdict. */
static __u32 sendn(struct tconn *c, int c2s, const char *s, size_t n)
{
	struct pkt p;
	__u32 r;

	pkt_build(&p, c, c2s, F_ACK | F_PSH, c2s ? c->cseq : c->sseq,
		  c2s ? c->sseq : c->cseq, s, n, NULL, 0);
	r = run(&p, false);
	if (c2s)
		c->cseq += n;
	else
		c->sseq += n;
	return r;
}

static __u32 cli(struct tconn *c, const char *s)
{
	return sendn(c, 1, s, strlen(s));
}

static __u32 srv(struct tconn *c, const char *s)
{
	return sendn(c, 0, s, strlen(s));
}

/* SYN, SYN-ACK (the guard starts tracking here), ACK. */
static void handshake(struct tconn *c)
{
	struct pkt p;

	pkt_build(&p, c, 1, F_SYN, c->cseq - 1, 0, NULL, 0, NULL, 0);
	check(run(&p, false) == PASS, "SYN not passed");
	pkt_build(&p, c, 0, F_SYN | F_ACK, c->sseq - 1, c->cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK not passed");
	pkt_build(&p, c, 1, F_ACK, c->cseq, c->sseq, NULL, 0, NULL, 0);
	check(run(&p, false) == PASS, "ACK not passed");
}

/* Handshake, greeting, EHLO and its reply. */
static void to_ehlo(struct tconn *c)
{
	handshake(c);
	check(srv(c, "220 mx.example.org ESMTP\r\n") == PASS, "greeting");
	check(cli(c, "EHLO c.example.org\r\n") == PASS, "EHLO");
	check(srv(c, "250-mx.example.org\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
		     "250 STARTTLS\r\n") == PASS, "EHLO reply");
}

static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
static const char server_hello[] = "\x16\x03\x03\x00\x7a\x02\x00\x00\x76";

/* To STARTTLS's 220 and the client's hello */
static void to_hello(struct tconn *c)
{
	to_ehlo(c);
	check(cli(c, "STARTTLS\r\n") == PASS, "STARTTLS");
	check(srv(c, "220 2.0.0 Ready to start TLS\r\n") == PASS, "220");
	check(sendn(c, 1, hello, sizeof(hello) - 1) == PASS, "ClientHello");
}

/* and the server's hello */
static void to_tls(struct tconn *c)
{
	to_hello(c);
	check(sendn(c, 0, server_hello, sizeof(server_hello) - 1) == PASS,
	      "ServerHello");
}

static int phase(const struct tconn *c)
{
	struct stg_conn_key k = { .cli_port = c->cport, .srv_port = c->sport };
	struct stg_conn v;

	memcpy(k.cli_addr, c->cli, 16);
	memcpy(k.srv_addr, c->srv, 16);
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.conns), &k, &v))
		return -1;
	return v.smtp.phase;
}

/* The packet that came out is an RST|ACK along the original direction
 * with these sequence numbers, 20 bytes of TCP, right checksums. */
static void check_rst(const struct tconn *c, uint32_t seq, uint32_t ack)
{
	const struct tcphdr *th = (const void *)(out.b + out.l4);

	check(out.len == out.l4 + 20, "RST length %u, want %u", out.len,
	      out.l4 + 20);
	check(out.b[out.l4 + 13] == (F_RST | F_ACK), "RST flags 0x%02x",
	      out.b[out.l4 + 13]);
	check(ntohl(th->seq) == seq, "RST seq %u, want %u", ntohl(th->seq),
	      seq);
	check(ntohl(th->ack_seq) == ack, "RST ack %u, want %u",
	      ntohl(th->ack_seq), ack);
	check(pkt_csum_ok(out.b, out.len, out.l3, c->v6), "RST checksums");
}

/* --- events --------------------------------------------------------------- */

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len == sizeof(struct stg_event) && nevs < 64)
		memcpy(&evs[nevs++], data, len);
	evs_seen++;
	return 0;
}

/* Read the events sent since the last call: nevs of them in evs. */
static int take_events(void)
{
	nevs = evs_seen = 0;
	ring_buffer__consume(evbuf);
	return nevs;
}

/* The one event sent since the last take_events() is of @type and
 * @reason, in @phase, about connection @c seen on ingress. */
static void check_event(const struct tconn *c, __u32 type, __u32 reason,
			__u32 phase)
{
	const struct stg_event *e = &evs[0];

	check(take_events() == 1, "%d events, want 1", nevs);
	if (nevs < 1)
		return;
	check(e->type == type, "event type %u, want %u", e->type, type);
	check(e->reason == reason, "event reason %u, want %u", e->reason,
	      reason);
	check(e->phase == phase, "event phase %u, want %u", e->phase, phase);
	check(e->ingress == 1, "event not on ingress");
	check(e->key.cli_port == c->cport && e->key.srv_port == c->sport &&
	      !memcmp(e->key.cli_addr, c->cli, 16) &&
	      !memcmp(e->key.srv_addr, c->srv, 16), "event's connection");
	check(e->time_ns != 0, "event without a time");
}

/* --- tests --------------------------------------------------------------- */

/* A plaintext MAIL FROM after EHLO: dropped, RST to both ends with the
 * sequence numbers Linux accepts (case 40), later packets dropped (20). */
static void t_mail_after_ehlo(int v6)
{
	struct tconn c = v6 ? conn6(40001) : conn4(40001);
	uint32_t seq, ack;

	to_ehlo(&c);
	seq = c.cseq;
	ack = c.sseq;
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == OK,
	      "MAIL FROM not reset");
	check_rst(&c, seq, ack);
	check(phase(&c) == STG_BLOCKED, "phase %d, want blocked", phase(&c));
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command = %llu",
	      (unsigned long long)resets(STG_R_PLAINTEXT_COMMAND));
	/* The retransmission of the offending segment, and anything else,
	 * is dropped until the entry goes. */
	c.cseq = seq;
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == SHOT,
	      "retransmission passed");
	check(srv(&c, "250 ok\r\n") == SHOT, "server data passed");
	check(counter(STG_C_BLOCKED_DROPS) == 2, "blocked drops");
}

static void t_mail_v4(void) { t_mail_after_ehlo(0); }
static void t_mail_v6(void) { t_mail_after_ehlo(1); }

/* Each client line in @lines (after EHLO) gets @want. */
static void expect_line(const char *line, __u32 want, __u32 reason)
{
	struct tconn c = conn4(40100);

	to_ehlo(&c);
	check(cli(&c, line) == want, "verdict for \"%s\"", line);
	if (reason)
		check(resets(reason) == 1, "reason %u not counted", reason);
}

static void t_forbidden_verbs(void)
{
	static const char *const bad[] = {
		"MAIL FROM:<>\r\n", "RCPT TO:<bob@example.org>\r\n", "DATA\r\n",
		"BDAT 9 LAST\r\nMAIL FROM", "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
		"VRFY alice\r\n", "EXPN staff\r\n", "ETRN example.org\r\n",
		"XCLIENT ADDR=192.0.2.10\r\n", "XXXXXXXX\r\n", "FOO\r\n",
		" MAIL FROM:<>\r\n", "\r\n", "STARTTLSX\r\n",
	};
	struct tconn c = conn4(40101);

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		reset_maps();
		expect_line(bad[i], OK, STG_R_PLAINTEXT_COMMAND);
	}
	/* a NUL inside a verb */
	reset_maps();
	to_ehlo(&c);
	check(sendn(&c, 1, "EHLO\0 x\r\n", 9) == OK, "NUL in a verb");
}

static void t_allowed_verbs(void)
{
	static const char *const good[] = {
		"NOOP\r\n", "RSET\r\n", "HELP\r\n", "QUIT\r\n", "noop\n",
		"helo c.example.org\r\n", "EhLo c\r\n",
	};

	for (unsigned int i = 0; i < sizeof(good) / sizeof(*good); i++) {
		reset_maps();
		expect_line(good[i], PASS, 0);
	}
}

/* Cases 12, 22, 24: lowercase, bare LF, pipelining: one reset each. */
static void t_lowercase_barelf_pipelined(void)
{
	expect_line("mail FROM:<alice@example.org>\r\n", OK,
		    STG_R_PLAINTEXT_COMMAND);
	reset_maps();
	expect_line("NOOP\nMAIL FROM:<alice@example.org>\n", OK,
		    STG_R_PLAINTEXT_COMMAND);
	reset_maps();
	expect_line("EHLO x\r\r\nMAIL FROM:<alice@example.org>\r\n", OK,
		    STG_R_PLAINTEXT_COMMAND);
	reset_maps();
	expect_line("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>"
		    "\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\n",
		    OK, STG_R_PLAINTEXT_COMMAND);
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "pipeline: one reset");
}

/* Case 6: a verb split over segments, down to a byte per segment. */
static void t_split_lines(void)
{
	struct tconn c = conn4(40200);

	to_ehlo(&c);
	check(cli(&c, "NO") == PASS, "NO");
	check(cli(&c, "OP\r") == PASS, "OP CR");
	check(cli(&c, "\n") == PASS, "LF");
	check(cli(&c, "M") == OK, "M: not a prefix of any allowed verb");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "split MAIL counted");

	reset_maps();
	c = conn4(40201);
	to_ehlo(&c);
	check(cli(&c, "START") == PASS, "START");
	check(cli(&c, "TLS\r\n") == PASS, "TLS CRLF");
	check(srv(&c, "220 go ahead\r\n") == PASS, "220");
	check(sendn(&c, 1, "\x16", 1) == PASS, "first hello byte");
	check(phase(&c) == STG_TLS_GO, "still waiting for the record header");
	check(sendn(&c, 1, hello + 1, sizeof(hello) - 2) == PASS, "rest");
	check(phase(&c) == STG_TLS_HELLO, "phase %d, want tls_hello",
	      phase(&c));
	check(sendn(&c, 0, server_hello, sizeof(server_hello) - 1) == PASS,
	      "ServerHello");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));
}

/* STARTTLS answered 220, then a ClientHello: encrypted, not parsed. */
static void t_starttls_220(int v6)
{
	struct tconn c = v6 ? conn6(40300) : conn4(40300);

	to_tls(&c);
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));
	check(counter(STG_C_TLS_UPGRADES) == 1, "tls_upgrades");
	/* Ciphertext that happens to read like commands (case 26). */
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == PASS,
	      "TLS data judged");
	check(srv(&c, "\x17\x03\x03\x00\x10" "AUTH PLAIN xx") == PASS,
	      "server TLS data");
}

static void t_tls_v4(void) { t_starttls_220(0); }
static void t_tls_v6(void) { t_starttls_220(1); }

/* Case 10: the server answers the hello with an alert and a plaintext
 * 454: the handshake failed, the server reads plaintext again, and so is
 * judged what the client sends. */
static void t_tls_failed(void)
{
	struct tconn c = conn4(40320);

	to_hello(&c);
	check(phase(&c) == STG_TLS_HELLO, "phase %d, want tls_hello",
	      phase(&c));
	check(srv(&c, "\x15\x03\x00\x00\x02\x02\x28"
		      "454 TLS not available due to a temporary reason\r\n")
		      == PASS, "alert + 454");
	check(phase(&c) == STG_PLAIN, "phase %d, want plain", phase(&c));
	check(counter(STG_C_TLS_FAILED) == 1, "tls_handshake_failed");
	check(counter(STG_C_TLS_UPGRADES) == 0, "counted as an upgrade");
	check(cli(&c, "QUIT\r\n") == PASS, "QUIT");
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == OK,
	      "plaintext MAIL after a failed handshake passed");
	check(resets(STG_R_AFTER_REFUSED) == 1,
	      "plaintext_after_starttls_refused");
}

/* Cases 8, 9: STARTTLS refused (454, 400, 472): plaintext rules stay. */
static void t_starttls_refused(void)
{
	static const char *const replies[] = {
		"454 4.7.0 TLS not available due to local problem\r\n",
		"400 try later\r\n", "472 no\r\n",
	};

	for (unsigned int i = 0; i < 3; i++) {
		struct tconn c = conn4(40400 + i);

		reset_maps();
		to_ehlo(&c);
		check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
		check(srv(&c, replies[i]) == PASS, "refusal");
		check(phase(&c) == STG_PLAIN, "phase %d, want plain",
		      phase(&c));
		check(counter(STG_C_STARTTLS_REFUSED) == 1, "refused count");
		check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == OK,
		      "MAIL after refusal passed");
	}
}

/* Cases 1, 2: bytes after STARTTLS before its reply. */
static void t_injection(void)
{
	struct tconn c = conn4(40500);

	to_ehlo(&c);
	check(cli(&c, "STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n") == OK,
	      "same-segment injection");
	check(resets(STG_R_STARTTLS_INJECTION) == 1, "injection counted");

	reset_maps();
	c = conn4(40501);
	handshake(&c);
	srv(&c, "220 mx ESMTP\r\n");
	check(cli(&c, "EHLO c.example.org\r\nSTARTTLS\r\nAUTH PLAIN AGFs\r\n")
		      == OK, "pipelined AUTH after STARTTLS");
	check(resets(STG_R_STARTTLS_INJECTION) == 1, "case 2 counted");

	reset_maps();
	c = conn4(40502);
	to_ehlo(&c);
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
	check(cli(&c, "RSET\r\n") == OK, "second segment before reply");
}

/* Non-TLS bytes after the 220 go-ahead; server bytes in that window. */
static void t_after_220(void)
{
	struct tconn c = conn4(40600);

	to_ehlo(&c);
	cli(&c, "STARTTLS\r\n");
	srv(&c, "220 ready\r\n");
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == OK,
	      "plaintext after 220");
	check(resets(STG_R_NOT_TLS_AFTER_220) == 1, "not_tls_after_220");

	reset_maps();
	c = conn4(40601);
	to_ehlo(&c);
	cli(&c, "STARTTLS\r\n");
	check(srv(&c, "220 Ready\r\n250-AUTH PLAIN") == OK,
	      "response injection (case 3)");
	check(resets(STG_R_RESPONSE_INJECTION) == 1, "response_injection");
}

/* Retransmissions are not judged twice; overlap judged from the next
 * byte; a segment beyond a gap is dropped without advancing (case 60). */
static void t_sequence(void)
{
	struct tconn c = conn4(40700);
	uint32_t at;

	to_ehlo(&c);
	at = c.cseq;
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP");
	c.cseq = at;
	check(cli(&c, "NOOP\r\n") == PASS, "retransmitted NOOP");
	check(counter(STG_C_RETRANSMITS) == 1, "retransmission counted");
	/* overlap: the old NOOP plus a new MAIL: judged from the new byte */
	c.cseq = at;
	check(cli(&c, "NOOP\r\nMAIL FROM:<a@example.org>\r\n") == OK,
	      "overlap carrying MAIL passed");

	reset_maps();
	c = conn4(40701);
	to_ehlo(&c);
	at = c.cseq;
	c.cseq += 6; /* a gap: "NOOP\r\n" not seen yet */
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == SHOT,
	      "out of order not dropped");
	check(counter(STG_C_OUT_OF_ORDER) == 1, "out_of_order counted");
	c.cseq = at;
	check(cli(&c, "NOOP\r\n") == PASS, "gap filled");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "retransmitted MAIL after the gap");

	/* An overlap with other bytes over judged but unacknowledged ones:
	 * the receiver keeps its first copy and takes the new tail, so the
	 * tail is judged after the first copy. */
	reset_maps();
	c = conn4(40702);
	to_ehlo(&c);
	at = c.cseq;
	check(cli(&c, "NOOP xxxx\r\n") == PASS, "NOOP xxxx");
	c.cseq = at;
	check(cli(&c, "NOOP       MAIL FROM:<a@example.org>\r\n") == OK,
	      "rewritten overlap carrying MAIL passed");

	/* Loss after the guard: the first of two segments retransmitted,
	 * then the session goes on (no stall, no reset). */
	reset_maps();
	c = conn4(40703);
	to_ehlo(&c);
	at = c.cseq;
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP");
	check(cli(&c, "RSET\r\n") == PASS, "RSET");
	c.cseq = at;
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP retransmitted");
	c.cseq = at + 12;
	check(srv(&c, "250 ok\r\n250 ok\r\n") == PASS, "replies");
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS after a loss");
	/* three segments, the middle one retransmitted alone */
	reset_maps();
	c = conn4(40704);
	to_ehlo(&c);
	at = c.cseq;
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP");
	check(cli(&c, "RSET\r\n") == PASS, "RSET");
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP 2");
	c.cseq = at + 6;
	check(cli(&c, "RSET\r\n") == PASS, "middle segment retransmitted");
	c.cseq = at + 18;
	check(cli(&c, "QUIT\r\n") == PASS, "QUIT");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 0, "a reset");
}

/* Exempt and denied hosts; the longest prefix wins (cases 18, 59). */
static void t_hosts(void)
{
	struct tconn c = conn4(40800);
	struct pkt p;

	host_set("192.0.2.0", 24, STG_ACT_DENY);
	host_set("192.0.2.10", 32, STG_ACT_EXEMPT);
	to_ehlo(&c);
	check(phase(&c) == STG_EXEMPT, "phase %d, want exempt", phase(&c));
	check(cli(&c, "XCLIENT ADDR=192.0.2.77\r\n") == PASS, "exempt XCLIENT");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == PASS, "exempt MAIL");
	check(counter(STG_C_EXEMPT) == 1, "exempt counted once");

	/* 192.0.2.11 is only in the /24: denied at its SYN. */
	reset_maps();
	host_set("192.0.2.0", 24, STG_ACT_DENY);
	host_set("192.0.2.10", 32, STG_ACT_EXEMPT);
	c = conn4(40801);
	inet_pton(AF_INET, "192.0.2.11", c.cli + 12);
	pkt_build(&p, &c, 1, F_SYN, 999, 0, NULL, 0, "\x02\x04\x05\xb4", 4);
	check(run(&p, false) == SHOT, "denied SYN not dropped");
	check(counter(STG_C_DENIED) == 1, "denied counted");
	check(resets(STG_R_DENIED_HOST) == 1, "denied_host counted");
	check(phase(&c) == -1, "state made for a SYN");

	/* An IPv6 /32. */
	reset_maps();
	host_set("2001:db8::", 32, STG_ACT_EXEMPT);
	c = conn6(40802);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == PASS, "v6 exempt");

	/* Default deny. */
	reset_maps();
	{
		static const int port25[] = { 25, 0 };

		configure(STG_MODE_ENFORCE, STG_ACT_DENY, port25);
	}
	c = conn4(40803);
	pkt_build(&p, &c, 1, F_SYN, 999, 0, NULL, 0, NULL, 0);
	check(run(&p, false) == SHOT, "default deny");
}

/* Monitor mode: counted, passed, and the flow stops being judged. */
static void t_monitor(void)
{
	static const int port25[] = { 25, 0 };
	struct tconn c = conn4(40900);

	configure(STG_MODE_MONITOR, STG_ACT_REQUIRE_TLS, port25);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == PASS,
	      "monitor mode dropped");
	check(counter(STG_C_MONITOR_HITS) == 1, "monitor_violations");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 0, "counted as a reset");
	check(phase(&c) == STG_MONITORED, "phase %d", phase(&c));
	check(cli(&c, "RCPT TO:<b@example.org>\r\n") == PASS, "later packet");
}

/* Traffic that is not ours passes untouched; ports are configurable. */
static void t_other_traffic(void)
{
	static const int ports[] = { 25, 587, 0 };
	struct tconn c = conn4(41000);
	struct pkt p;

	c.sport = 80;
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == PASS, "port 80");
	check(phase(&c) == -1, "state for port 80");
	check(counter(STG_C_PACKETS) == 0, "port 80 inspected");

	configure(STG_MODE_ENFORCE, STG_ACT_REQUIRE_TLS, ports);
	c = conn4(41001);
	c.sport = 587;
	to_ehlo(&c);
	check(cli(&c, "AUTH LOGIN\r\n") == OK, "port 587 not guarded");

	/* a UDP datagram to port 25 */
	c = conn4(41002);
	pkt_build(&p, &c, 1, F_ACK, 1, 1, "MAIL", 4, NULL, 0);
	p.b[p.l3 + 9] = IPPROTO_UDP;
	pkt_fix_ip4(&p);
	check(run(&p, false) == PASS, "UDP");
}

/* Case 61: TCP option bytes are not payload; case 46: IPv4 options;
 * VLAN tags in the packet. */
static void t_headers(void)
{
	struct tconn c = conn4(41100);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, NULL, 0,
		  "\x01\x01\x08\x0aMAIL\x00\x00\x00\x01", 12);
	check(run(&p, false) == PASS, "TCP options read as payload");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK, "then MAIL");

	reset_maps();
	c = conn4(41101);
	c.ip_opts = 1;
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK, "IPv4 options");
	check_rst(&c, c.cseq - 27, c.sseq);

	reset_maps();
	c = conn4(41102);
	c.vlan = 1;
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK, "VLAN");
	check(out.b[12] == 0x81 && out.b[13] == 0x00, "RST lost its VLAN tag");
	check_rst(&c, c.cseq - 27, c.sseq);
}

/* Fragments of a guarded connection cannot be judged at TC: dropped. */
static void t_fragments(void)
{
	struct tconn c = conn4(41200);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "MAIL", 4, NULL, 0);
	p.b[p.l3 + 6] = 0x20; /* MF */
	pkt_fix_ip4(&p);
	check(run(&p, false) == SHOT, "first fragment passed");
	check(counter(STG_C_FRAGMENTS) == 1, "fragments_dropped");
	p.b[p.l3 + 6] = 0x00;
	p.b[p.l3 + 7] = 0x10; /* offset: no TCP header, ports unknown */
	pkt_fix_ip4(&p);
	check(run(&p, false) == PASS, "later fragment judged as TCP");
}

/* Picked up mid-stream (attached after the connection began, or its
 * entry evicted): a TLS record waits for the other side's; plaintext is
 * judged as after the greeting (case 43); --midstream pass passes. */
static void t_pickup(void)
{
	static const char record[] = "\x17\x03\x03\x00\x05hello";
	struct tconn c = conn4(41300);

	check(sendn(&c, 1, record, 10) == PASS, "TLS picked up");
	check(phase(&c) == STG_PICKUP_TLS, "pickup phase %d", phase(&c));
	check(counter(STG_C_PICKUP_TLS) == 1, "pickup_tls");
	check(sendn(&c, 1, record, 10) == PASS, "more client TLS");
	check(phase(&c) == STG_PICKUP_TLS, "TLS on one side only");
	check(sendn(&c, 0, record, 10) == PASS, "server TLS");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));

	c = conn4(41301);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "plaintext MAIL picked up");
	check(counter(STG_C_PICKUP_PLAIN) == 1, "pickup_plaintext");

	/* a record, then text: the session was plaintext all along */
	reset_maps();
	c = conn4(41302);
	check(sendn(&c, 1, record, 10) == PASS, "record picked up");
	check(srv(&c, "500 5.5.2 Error: bad syntax\r\n") == OK,
	      "server text after a picked-up record passed");
	check(resets(STG_R_PICKUP_NOT_TLS) == 1, "pickup_not_tls");
	reset_maps();
	c = conn4(41303);
	check(sendn(&c, 1, record, 10) == PASS, "record picked up");
	check(cli(&c, "\r\n mail FROM:<a@example.org>\r\n") == OK,
	      "a command line after its record passed");
	check(resets(STG_R_PICKUP_NOT_TLS) == 1, "pickup_not_tls (client)");
	/* (review) junk first, commands behind it, in one packet */
	reset_maps();
	c = conn4(41306);
	check(sendn(&c, 1, "NOOP\x01\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
		    38) == OK, "MAIL behind a binary byte passed");
	check(resets(STG_R_PICKUP_NOT_TLS) == 1, "pickup_not_tls (junk first)");
	/* ciphertext that reads "MAIL" mid-line is not a line */
	reset_maps();
	c = conn4(41307);
	check(sendn(&c, 1, record, 10) == PASS, "record picked up");
	check(sendn(&c, 1, "\x9cMAIL\x01\x02", 7) == PASS, "MAIL mid-line");
	check(sendn(&c, 0, record, 10) == PASS, "server TLS");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));

	/* --midstream pass */
	reset_maps();
	{
		static const int port25[] = { 25, 0 };

		configure(STG_MODE_ENFORCE, STG_ACT_REQUIRE_TLS, port25);
		set_flags(STG_CFG_MIDSTREAM_PASS);
	}
	c = conn4(41304);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == PASS,
	      "--midstream pass reset a picked-up MAIL");
	check(counter(STG_C_PICKUP_PASSED) == 1, "pickup_passed");
	check(phase(&c) == STG_EXEMPT, "phase %d", phase(&c));
	/* a connection seen from its start is judged as ever */
	c = conn4(41305);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL of a tracked connection passed");
}

/* Egress (outbound): the same verdicts from the egress program. */
static void t_egress(void)
{
	struct tconn c = conn4(41400);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, "AUTH LOGIN\r\n",
		  12, NULL, 0);
	check(run(&p, true) == OK, "egress AUTH");
	check_rst(&c, c.cseq, c.sseq);
}

/* A SYN-ACK with a new initial sequence number starts afresh (port
 * reuse after a reset). */
static void t_reuse(void)
{
	struct tconn c = conn4(41500);

	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK, "reset");
	c.cseq = 5000;
	c.sseq = 80000;
	to_ehlo(&c);
	check(phase(&c) == STG_PLAIN, "not afresh: phase %d", phase(&c));
}

/* A client that forges the local server's address to feed the guard a
 * go-ahead: server packets of a local server never arrive on ingress. */
static void t_spoofed_server(void)
{
	struct tconn c = conn4(41700);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(25) };
	struct sockaddr_in ca = { .sin_family = AF_INET,
				  .sin_port = htons(41700) };
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int cs = socket(AF_INET, SOCK_STREAM, 0), as = -1, one = 1;
	struct linger abort_close = { .l_onoff = 1 };
	struct pkt p;

	/* bound again by the next run of the tests: no TIME_WAIT left */
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(cs, SOL_SOCKET, SO_LINGER, &abort_close,
		   sizeof(abort_close));

	/* A local server with a connection on exactly this tuple (in the
	 * test's own namespace, over loopback). A listener alone does not
	 * count: a local MTA listens on 25 and also sends mail out. */
	inet_pton(AF_INET, "127.0.0.25", &sa.sin_addr);
	inet_pton(AF_INET, "127.0.0.10", &ca.sin_addr);
	check(!bind(ls, (void *)&sa, sizeof(sa)) && !listen(ls, 1),
	      "listen on 127.0.0.25:25: %s", strerror(errno));
	inet_pton(AF_INET, "127.0.0.10", c.cli + 12);
	inet_pton(AF_INET, "127.0.0.25", c.srv + 12);
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK on ingress, listener only");
	check(counter(STG_C_SPOOFED) == 0, "a listener counted as local");
	reset_maps();
	check(!bind(cs, (void *)&ca, sizeof(ca)) &&
		      !connect(cs, (void *)&sa, sizeof(sa)) &&
		      (as = accept(ls, NULL, NULL)) >= 0,
	      "loopback connection: %s", strerror(errno));

	/* The real SYN-ACK leaves through egress. */
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, true) == PASS, "SYN-ACK on egress");
	check(phase(&c) == STG_PLAIN, "not tracked");
	pkt_build(&p, &c, 0, F_ACK | F_PSH, c.sseq, c.cseq, "220 mx\r\n", 8,
		  NULL, 0);
	check(run(&p, true) == PASS, "greeting on egress");
	c.sseq += 8;
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
	/* A forged go-ahead; a SYN and a forged SYN-ACK answering it, on
	 * ingress. */
	check(srv(&c, "220 go ahead\r\n") == SHOT, "forged 220 passed");
	c.sseq -= 14; /* never sent by the server */
	pkt_build(&p, &c, 1, F_SYN, 5000, 0, NULL, 0, NULL, 0);
	check(run(&p, false) == PASS, "SYN");
	pkt_build(&p, &c, 0, F_SYN | F_ACK, 777, 5001, NULL, 0, NULL, 0);
	check(run(&p, false) == SHOT, "forged SYN-ACK passed");
	check(counter(STG_C_SPOOFED) == 2, "spoofed counted");
	check(phase(&c) == STG_STARTTLS_SENT, "phase %d", phase(&c));
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == OK,
	      "ClientHello without a real 220 passed");
	close(as);
	close(cs);
	close(ls);
}

/* A SYN-ACK alone does not end a connection's state; one that answers a
 * client SYN on the tuple does, and then the real stream, before the new
 * start, is not taken for "retransmissions" passed unjudged. */
static void t_forged_synack(void)
{
	struct tconn c = conn4(41600);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 0, F_SYN | F_ACK, 12345, c.cseq + 100000, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "lone SYN-ACK");
	check(phase(&c) == STG_PLAIN, "state lost");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL after a lone SYN-ACK");

	reset_maps();
	c = conn4(41601);
	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_SYN, c.cseq + 99999, 0, NULL, 0, NULL, 0);
	check(run(&p, false) == PASS, "SYN");
	/* another server ISN, and tracking restarted far ahead */
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq + 100000, NULL,
		  0, NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == SHOT,
	      "MAIL before the new start passed");
	check(counter(STG_C_OUT_OF_WINDOW) == 1, "out_of_window counted");
	check(counter(STG_C_RETRANSMITS) == 0, "taken as a retransmission");
}

/* What the server's TCP reads differently, or discards, is not judged as
 * if it were delivered: urgent data; data without ACK, acking unsent
 * data or carrying TCP-MD5, after which other bytes may come at the same
 * sequence number. */
static void t_unacceptable(void)
{
	struct tconn c = conn4(41800);
	uint32_t at;
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_URG, c.cseq, c.sseq, "NOOP ", 5, NULL, 0);
	check(run(&p, false) == OK, "urgent data not reset");
	check(resets(STG_R_URGENT_DATA) == 1, "urgent_data counted");

	reset_maps();
	c = conn4(41801);
	to_ehlo(&c);
	at = c.cseq;
	pkt_build(&p, &c, 1, F_PSH, at, 0, "NOOP xxx\r\n", 10, NULL, 0);
	check(run(&p, false) == SHOT, "data without ACK");
	pkt_build(&p, &c, 1, F_ACK, at, c.sseq + 100000, "NOOP xxx\r\n", 10,
		  NULL, 0);
	check(run(&p, false) == SHOT, "ACK of unsent data");
	pkt_build(&p, &c, 1, F_ACK, at, c.sseq, "NOOP xxx\r\n", 10,
		  "\x13\x12" "0123456789abcdef" "\x01\x01", 20);
	check(run(&p, false) == SHOT, "TCP-MD5 option");
	check(counter(STG_C_UNACCEPTABLE) == 3, "unacceptable counted");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL at the same sequence number passed");
}

/* Ethernet padding of short frames is no payload (the frame of a bare
 * ACK is padded to 60 bytes on the wire). */
static void t_padding(void)
{
	struct tconn c = conn4(41900);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, NULL, 0, NULL, 0);
	p.len += 6; /* zeros after the IP datagram */
	check(run(&p, false) == PASS, "padded ACK judged");
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, "EHLO ", 5, NULL, 0);
	p.len += 1;
	check(run(&p, false) == PASS, "padded EHLO");
	c.cseq += 5;
	check(cli(&c, "x\r\nMAIL FROM:<a@example.org>\r\n") == OK,
	      "padding shifted the stream");
}

/* Headers cut short or too deep to find the ports: dropped (a tiny first
 * fragment, four VLAN tags). */
static void t_unparseable(void)
{
	struct tconn c = conn4(42000);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "MAIL", 4, NULL, 0);
	p.b[p.l3 + 6] = 0x20; /* MF */
	*(uint16_t *)(p.b + p.l3 + 2) = htons(20 + 8);
	pkt_fix_ip4(&p);
	p.len = p.l4 + 8;     /* half a TCP header */
	check(run(&p, false) == SHOT, "tiny first fragment passed");

	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "MAIL", 4, NULL, 0);
	memmove(p.b + 24, p.b + 12, p.len - 12);
	for (int i = 0; i < 3; i++) {
		p.b[12 + 4 * i] = 0x81;
		p.b[13 + 4 * i] = 0x00;
		p.b[14 + 4 * i] = 0x00;
		p.b[15 + 4 * i] = 0x00;
	}
	p.len += 12;
	check(run(&p, false) == SHOT, "three VLAN tags passed");
	check(counter(STG_C_UNINSPECTABLE) == 2, "uninspectable counted");
}

/* A new connection on the tuple (SYN, SYN-ACK) whose ISN is close to the
 * old stream's still starts afresh: tracking restarts on any other ISN
 * than the one tracked. */
static void t_synack_isn(void)
{
	struct tconn c = conn4(42100);
	struct pkt p;

	to_tls(&c);
	/* the server's next byte as tracked, minus one, as ISN */
	c.cseq = 9000;
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, NULL, 0, NULL, 0);
	check(run(&p, false) == PASS, "SYN");
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK");
	check(phase(&c) == STG_PLAIN, "kept the old TLS phase");
}

/* A packet the stack drops is not judged (other bytes may follow at the
 * same sequence number); one it may take another way than it looks is
 * dropped. */
static void t_ip_checks(void)
{
	static const char mail[] = "MAIL FROM:<a@example.org>\r\n";
	struct tconn c = conn4(42200);
	struct pkt p;

	to_ehlo(&c);
	/* bad header checksum, version 6 under IPv4, longer than the frame */
	for (int i = 0; i < 3; i++) {
		pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "NOOP xxxxxxxxxxxxxxxxxxxxx\r\n",
			  27, NULL, 0);
		if (i == 0)
			p.b[p.l3 + 10] ^= 0xff;
		if (i == 1) {
			p.b[p.l3] = 0x65;
			pkt_fix_ip4(&p);
		}
		if (i == 2) {
			*(uint16_t *)(p.b + p.l3 + 2) = htons(200);
			pkt_fix_ip4(&p);
		}
		check(run(&p, false) == PASS, "bad IPv4 header %d", i);
	}
	/* an Ethernet broadcast */
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "NOOP xxxxxxxxxxxxxxxxxxxxx\r\n",
		  27, NULL, 0);
	memset(p.b, 0xff, 6);
	check(run(&p, false) == PASS, "broadcast");
	check(cli(&c, mail) == OK, "MAIL after unjudged bad packets");

	/* a loose source route option */
	reset_maps();
	c = conn4(42201);
	c.ip_opts = 1;
	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "NOOP\r\n", 6, NULL, 0);
	p.b[p.l3 + 20] = 131;
	p.b[p.l3 + 21] = 3;
	p.b[p.l3 + 22] = 4;
	pkt_fix_ip4(&p);
	check(run(&p, false) == SHOT, "LSRR option judged");

	/* IPv4-mapped IPv6 addresses would share the IPv4 connection's key */
	reset_maps();
	c = conn4(42202);
	to_ehlo(&c);
	c.v6 = 1;
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "NOOP\r\n", 6, NULL, 0);
	check(run(&p, false) == SHOT, "v4-mapped IPv6 passed");

	/* IPv6 payload length 0 without a jumbo option: trimmed to nothing */
	reset_maps();
	c = conn6(42203);
	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, "NOOP xx\r\n", 9, NULL, 0);
	p.b[p.l3 + 4] = p.b[p.l3 + 5] = 0;
	check(run(&p, false) == PASS, "zero IPv6 length");
	check(cli(&c, mail) == OK, "MAIL after an unjudged packet");

	/* UDP behind 6 IPv6 extension headers is not ours; behind 7, the
	 * ports cannot be found */
	for (int n = 6; n <= 7; n++) {
		uint32_t off;

		reset_maps();
		c = conn6(42204);
		pkt_build(&p, &c, 1, F_ACK, 1, 1, NULL, 0, NULL, 0);
		off = p.l3 + 40;
		p.b[p.l3 + 6] = 60;
		for (int i = 0; i < n; i++, off += 8) {
			memset(p.b + off, 0, 8);
			p.b[off] = i == n - 1 ? IPPROTO_UDP : 60;
			p.b[off + 2] = 1; /* PadN */
			p.b[off + 3] = 4;
		}
		memset(p.b + off, 0, 8);
		p.b[off + 3] = 53;
		p.len = off + 8;
		*(uint16_t *)(p.b + p.l3 + 4) = htons(p.len - p.l3 - 40);
		check(run(&p, false) == (n == 6 ? PASS : SHOT),
		      "UDP behind %d extension headers", n);
	}
}

/* More segments the server's TCP takes differently: data on an RST or on
 * a SYN, an ACK from before the connection, TCP-MD5 behind many options;
 * an urgent pointer only counts in sequence. */
static void t_discarded_more(void)
{
	static const char noop[] = "NOOP xxxxxxxxxxxxxxxxxxxxx\r\n";
	static const char mail[] = "MAIL FROM:<a@example.org>\r\n";
	uint8_t opts[40];
	struct tconn c = conn4(42300);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_RST | F_ACK, c.cseq - 1, c.sseq, noop, 27,
		  NULL, 0);
	check(run(&p, false) == PASS, "RST with data");
	pkt_build(&p, &c, 1, F_SYN | F_ACK, c.cseq - 1, c.sseq, noop, 27,
		  NULL, 0);
	check(run(&p, false) == SHOT, "SYN with data");
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq - (1u << 30), noop, 27,
		  NULL, 0);
	check(run(&p, false) == SHOT, "too old ACK");
	memset(opts, 1, 20);
	opts[20] = 19;
	opts[21] = 18;
	memset(opts + 22, 0x55, 16);
	opts[38] = opts[39] = 0;
	pkt_build(&p, &c, 1, F_ACK, c.cseq, c.sseq, noop, 27, opts, 40);
	check(run(&p, false) == SHOT, "TCP-MD5 behind 20 NOPs");
	/* an off-path urgent pointer resets nothing */
	pkt_build(&p, &c, 1, F_ACK | F_URG, c.cseq + 12345, c.sseq, NULL, 0,
		  NULL, 0);
	run(&p, false);
	check(resets(STG_R_URGENT_DATA) == 0, "off-path URG reset the session");
	check(cli(&c, mail) == OK, "MAIL after discarded segments");

	reset_maps();
	c = conn4(42301);
	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_URG, c.cseq, c.sseq, NULL, 0, NULL, 0);
	*(uint16_t *)(p.b + p.l4 + 18) = htons(1);
	check(run(&p, false) == OK, "urgent pointer in sequence");
	check(resets(STG_R_URGENT_DATA) == 1, "urgent_data counted");
}

/* Picked up mid-stream: a session in TLS seen from the middle of a record
 * passes; the side not seen yet starts with its next packet. */
static void t_pickup_midstream(void)
{
	static const char cipher[] = "\x8f\x01\xe2NOOP7\x99\x00\xfe\x10\x33\x44\x55\x66";
	struct tconn c = conn4(42400);

	check(sendn(&c, 1, cipher, sizeof(cipher) - 1) == PASS,
	      "ciphertext mid-record reset");
	check(phase(&c) == STG_PICKUP_TLS, "phase %d", phase(&c));
	check(sendn(&c, 0, cipher, sizeof(cipher) - 1) == PASS,
	      "server ciphertext reset");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));

	/* plaintext: the server's data in flight was beyond the client's ACK */
	c = conn4(42401);
	check(cli(&c, "NOOP\r\n") == PASS, "pickup NOOP");
	c.sseq += 100; /* server bytes that passed before we were attached */
	check(srv(&c, "250 ok\r\n") == PASS, "server data after pickup");
	check(cli(&c, "NOOP\r\n") == PASS, "client data acking it");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL after pickup");
}

/* Replies matched to commands; TLS only after the go-ahead, answered by
 * TLS (cases 8, 9). Each reason is counted as its own. */
static void t_replies(void)
{
	struct tconn c = conn4(42500);

	/* a forged or stray 220 with no command waiting */
	to_ehlo(&c);
	check(srv(&c, "220 go ahead\r\n") == OK, "unsolicited 220 passed");
	check(resets(STG_R_UNSOLICITED_REPLY) == 1, "unsolicited_reply");

	/* a ClientHello before any STARTTLS */
	reset_maps();
	c = conn4(42501);
	to_ehlo(&c);
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == OK,
	      "hello without STARTTLS passed");
	check(resets(STG_R_TLS_WITHOUT_GO_AHEAD) == 1, "tls_without_go_ahead");

	/* case 8: a ClientHello after a 454 */
	reset_maps();
	c = conn4(42502);
	to_ehlo(&c);
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
	check(srv(&c, "454 4.7.0 TLS not available\r\n") == PASS, "454");
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == OK,
	      "hello after a 454 passed");
	check(resets(STG_R_TLS_WITHOUT_GO_AHEAD) == 1, "case 8 counted");

	/* case 9: plaintext after the refusal has its own reason */
	reset_maps();
	c = conn4(42503);
	to_ehlo(&c);
	cli(&c, "STARTTLS\r\n");
	srv(&c, "454 4.7.0 TLS not available due to local problem\r\n");
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\n") == OK,
	      "MAIL after a refusal passed");
	check(resets(STG_R_AFTER_REFUSED) == 1,
	      "plaintext_after_starttls_refused");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 0, "counted as plaintext");

	/* the server answers the hello in plaintext: reset from stg_check */
	reset_maps();
	c = conn4(42504);
	to_hello(&c);
	check(srv(&c, "500 5.5.2 Error: bad syntax\r\n") == OK,
	      "plaintext answer to the hello passed");
	check(resets(STG_R_SERVER_NOT_TLS) == 1, "server_not_tls");
	check(phase(&c) == STG_BLOCKED, "phase %d", phase(&c));
}

static int entries(void)
{
	int fd = bpf_map__fd(skel->maps.conns), n = 0;
	struct stg_conn_key k, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &k)) {
		n++;
		prev = &k;
	}
	return n;
}

/* A packet without data from the client (@c2s) or server, with @flags. */
static __u32 bare(struct tconn *c, int c2s, uint8_t flags)
{
	struct pkt p;

	pkt_build(&p, c, c2s, flags, c2s ? c->cseq : c->sseq,
		  c2s ? c->sseq : c->cseq, NULL, 0, NULL, 0);
	return run(&p, false);
}

/* Case 28: entries go at the close, so that health checks (connect,
 * EHLO, QUIT or an abrupt close) leave the map at its baseline. */
static void t_close(void)
{
	struct tconn c;

	for (int i = 0; i < 50; i++) {
		c = conn4(42600 + i);
		to_ehlo(&c);
		switch (i % 3) {
		case 0: /* QUIT, 221, FINs */
			cli(&c, "QUIT\r\n");
			srv(&c, "221 2.0.0 Bye\r\n");
			check(bare(&c, 0, F_FIN | F_ACK) == PASS, "server FIN");
			c.sseq++;
			check(bare(&c, 1, F_FIN | F_ACK) == PASS, "client FIN");
			c.cseq++;
			check(bare(&c, 0, F_ACK) == PASS, "last ACK");
			break;
		case 1: /* abrupt FIN from the client first */
			check(bare(&c, 1, F_FIN | F_ACK) == PASS, "client FIN");
			c.cseq++;
			check(srv(&c, "421 4.4.2 closing\r\n") == PASS,
			      "data after a FIN");
			check(bare(&c, 0, F_FIN | F_ACK) == PASS, "server FIN");
			c.sseq++;
			check(bare(&c, 1, F_ACK) == PASS, "last ACK");
			break;
		default: /* RST */
			check(bare(&c, 1, F_RST | F_ACK) == PASS, "client RST");
		}
	}
	check(entries() == 0, "%d entries left", entries());
	check(counter(STG_C_CLOSED) == 50, "connections_closed %llu",
	      (unsigned long long)counter(STG_C_CLOSED));

	/* An RST the server would not take (not at its next byte) does not
	 * end the entry, and the connection is judged as before. */
	c = conn4(42700);
	to_ehlo(&c);
	c.cseq += 1000;
	check(bare(&c, 1, F_RST | F_ACK) == PASS, "out-of-window RST");
	c.cseq -= 1000;
	check(entries() == 1, "entry ended by an RST out of the window");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL after an ignored RST");

	/* A reset connection keeps its entry: what is still in flight is
	 * dropped, not judged again. */
	check(bare(&c, 0, F_RST | F_ACK) == PASS, "server RST");
	check(entries() == 1, "blocked entry gone at its RST");
	check(cli(&c, "NOOP\r\n") == SHOT, "data after the reset passed");
}

/* Case 27: data on a SYN (TCP Fast Open) is judged like any other. */
static void t_tfo(void)
{
	static const char bad[] = "EHLO c.example.org\r\nMAIL FROM:<alice@example.org>\r\n";
	static const char good[] = "EHLO c.example.org\r\n";
	struct tconn c = conn4(42800);
	struct pkt p;

	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, bad, sizeof(bad) - 1,
		  NULL, 0);
	check(run(&p, false) == OK, "MAIL on a SYN not reset");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command");
	check(counter(STG_C_SYN_PAYLOADS) == 1, "syn_payloads_judged");

	/* taken by the server (the SYN-ACK acknowledges the data) */
	reset_maps();
	c = conn4(42801);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, good, sizeof(good) - 1,
		  NULL, 0);
	check(run(&p, false) == PASS, "EHLO on a SYN");
	c.cseq += sizeof(good) - 1;
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK");
	check(srv(&c, "220 mx ESMTP\r\n") == PASS, "greeting");
	check(srv(&c, "250 mx\r\n") == PASS, "EHLO's reply");
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
	check(srv(&c, "220 go\r\n") == PASS, "220");
	check(phase(&c) == STG_TLS_GO, "phase %d, want tls_go", phase(&c));

	/* not taken (no cookie): the client sends it again, judged again */
	reset_maps();
	c = conn4(42802);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, good, sizeof(good) - 1,
		  NULL, 0);
	check(run(&p, false) == PASS, "EHLO on a SYN");
	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, false) == PASS, "SYN-ACK without the data");
	check(srv(&c, "220 mx ESMTP\r\n") == PASS, "greeting");
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL where the SYN's EHLO was not taken");
}

/* The SYN-ACK, then a client MAIL: an inbound connection has the
 * server's packets on egress and the client's on ingress, an outbound one
 * the other way round. Returns the MAIL's verdict. */
static __u32 mail_on(int port, bool inbound)
{
	struct tconn c = conn4(port);
	struct pkt p;

	pkt_build(&p, &c, 0, F_SYN | F_ACK, c.sseq - 1, c.cseq, NULL, 0,
		  NULL, 0);
	check(run(&p, inbound) == PASS, "SYN-ACK");
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq,
		  "MAIL FROM:<a@b>\r\n", 17, NULL, 0);
	return run(&p, !inbound);
}

/* Ways around the state found by review: data on a SYN of a live
 * connection (its server drops it) must not take the place of the bytes
 * the server reads; an RST one past the next byte (no FIN) does not end
 * the entry; data before the SYN-ACK of a SYN with data is dropped;
 * one-way, data on a SYN is dropped and auth-only is not applied. */
static void t_state_attacks(void)
{
	uint32_t at;
	static const char noops[] = "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n";
	static const char mail[] = "MAIL FROM:<a@atk.example>\r\n";
	struct tconn c = conn4(43600);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, noops, sizeof(noops) - 1,
		  NULL, 0);
	check(run(&p, false) == SHOT, "SYN with data on a live connection passed");
	check(phase(&c) == STG_PLAIN, "phase %d", phase(&c));
	check(cli(&c, mail) == OK, "MAIL after a SYN with data passed");

	/* RST at next + 1 without a FIN: the server sends a challenge ACK */
	reset_maps();
	c = conn4(43601);
	to_ehlo(&c);
	c.cseq++;
	check(bare(&c, 1, F_RST | F_ACK) == PASS, "RST");
	c.cseq--;
	check(entries() == 1, "entry ended by an RST the server does not take");
	check(sendn(&c, 1, "NOOP\x01\r\nMAIL FROM:<a@b>\r\n", 26) == OK,
	      "MAIL behind a binary byte passed");

	/* (second review) data acking less than the client acked before:
	 * the server may drop it as too old, so it is not judged */
	reset_maps();
	c = conn4(43604);
	to_ehlo(&c);
	check(bare(&c, 1, F_ACK) == PASS, "ACK of the EHLO reply");
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq - 10,
		  "NOOP xxxxxxxxxxxxxxxxxxxxxx\r\n", 29, NULL, 0);
	check(run(&p, false) == SHOT, "data with an older ACK passed");
	check(cli(&c, "MAIL FROM:<a@x.org>\r\nRCPT\r\n") == OK,
	      "MAIL in the place of dropped bytes passed");

	/* (third review) reordering: a later segment with a higher ACK,
	 * beyond a gap, does not make the earlier one "too old" */
	reset_maps();
	c = conn4(43609);
	to_ehlo(&c);
	check(cli(&c, "NOOP\r\n") == PASS, "NOOP");
	at = c.sseq; /* what the client acks before the reply reaches it */
	check(srv(&c, "250 ok\r\n") == PASS, "reply");
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq + 6, c.sseq,
		  "RSET\r\n", 6, NULL, 0);
	check(run(&p, false) == SHOT, "segment beyond a gap passed");
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, at, "NOOP\r\n", 6,
		  NULL, 0);
	check(run(&p, false) == PASS, "the earlier segment, lower ACK, dropped");
	c.cseq += 6;
	check(cli(&c, "RSET\r\n") == PASS, "the later one again");

	/* a FIN out of the window does not count: no RST one past after */
	reset_maps();
	c = conn4(43605);
	to_ehlo(&c);
	c.cseq += 200000;
	check(bare(&c, 1, F_FIN | F_ACK) == PASS, "FIN");
	c.cseq -= 200000 - 1;
	check(bare(&c, 1, F_RST | F_ACK) == PASS, "RST");
	c.cseq--;
	check(entries() == 1, "entry ended by a FIN out of the window and an RST");

	/* picked up: encrypt, and no reply is taken for a go-ahead */
	reset_maps();
	set_cfg(true, NULL, 0);
	c = conn4(43606);
	check(cli(&c, "NOOP\r\n") == PASS, "picked-up NOOP");
	check(cli(&c, "STARTTLS\r\n") == OK, "STARTTLS after a pickup passed");
	c = conn4(43607);
	check(cli(&c, "NOOP\r\n") == PASS, "picked-up NOOP");
	check(cli(&c, "DATA\r\n") == OK, "DATA after a pickup on an auth-only port passed");

	/* picked up with junk: a line too long is reset (Exim cuts them) */
	reset_maps();
	c = conn4(43608);
	{
		static char junk[1400];

		memset(junk, 'x', sizeof(junk));
		junk[0] = 0x01;
		check(sendn(&c, 1, junk, sizeof(junk)) == PASS, "junk picked up");
		check(sendn(&c, 1, junk + 1, sizeof(junk) - 1) == PASS,
		      "more junk");
		check(sendn(&c, 1, junk + 1, sizeof(junk) - 1) == OK,
		      "a line past 4096 bytes passed");
	}

	/* data before the SYN-ACK that tells whether the SYN's was taken */
	reset_maps();
	c = conn4(43602);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, "EHLO x\r\n", 8, NULL, 0);
	check(run(&p, false) == PASS, "SYN with EHLO");
	check(cli(&c, mail) == SHOT, "data before the SYN-ACK passed");

	/* one-way */
	reset_maps();
	set_cfg(true, NULL, STG_CFG_ONE_WAY);
	c = conn4(43603);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, "EHLO x\r\n", 8, NULL, 0);
	check(run(&p, false) == SHOT, "one-way: data on a SYN passed");
	check(entries() == 0, "one-way: state made for a SYN");
	handshake(&c);
	check(cli(&c, "EHLO x\r\n") == PASS, "one-way: EHLO");
	check(cli(&c, mail) == OK, "one-way, auth-only port: MAIL passed");
}

/* --direction inbound|outbound|both */
static void t_direction(void)
{
	check(mail_on(42900, true) == OK, "inbound MAIL passed");
	check(mail_on(42901, false) == OK, "outbound MAIL passed");

	reset_maps();
	set_flags(STG_CFG_NO_OUTBOUND);
	check(mail_on(42902, true) == OK, "inbound only: inbound MAIL passed");
	check(mail_on(42903, false) == PASS,
	      "inbound only: outbound MAIL judged");
	check(entries() == 1, "inbound only: %d entries, want 1", entries());

	reset_maps();
	set_flags(STG_CFG_NO_INBOUND);
	check(mail_on(42904, true) == PASS,
	      "outbound only: inbound MAIL judged");
	check(mail_on(42905, false) == OK,
	      "outbound only: outbound MAIL passed");
}

/* Implicit-TLS ports (465): the client's first bytes must be its hello. */
static void t_implicit_tls(void)
{
	static const int ports[] = { 25, 465, 0 };
	struct stg_config cfg;
	__u32 zero = 0;
	int fd = bpf_map__fd(skel->maps.settings);
	struct tconn c = conn4(43000);

	configure(STG_MODE_ENFORCE, STG_ACT_REQUIRE_TLS, ports);
	bpf_map_lookup_elem(fd, &zero, &cfg);
	cfg.tls_ports[465 >> 6] |= 1ULL << (465 & 63);
	bpf_map_update_elem(fd, &zero, &cfg, 0);

	c.sport = 465;
	handshake(&c);
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == PASS, "ClientHello");
	check(sendn(&c, 0, server_hello, sizeof(server_hello) - 1) == PASS,
	      "ServerHello");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));

	c = conn4(43001);
	c.sport = 465;
	handshake(&c);
	check(cli(&c, "EHLO c.example.org\r\n") == OK, "plaintext on 465");
	check(resets(STG_R_NOT_TLS_AFTER_220) == 1, "not_tls_after_220");

	c = conn4(43002);
	c.sport = 465;
	handshake(&c);
	check(srv(&c, "220 mx ESMTP\r\n") == OK, "server text before the hello");
	/* port 25 is unchanged */
	c = conn4(43003);
	to_tls(&c);
	check(phase(&c) == STG_TLS, "port 25: phase %d", phase(&c));
}

/* Policy auth-only: mail in plaintext passes, bodies are followed (DATA,
 * BDAT), AUTH before TLS is reset. */
static void t_auth_only(void)
{
	struct tconn c = conn4(43100);

	set_cfg(true, NULL, 0);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
		      == PASS, "pipelined transaction");
	check(srv(&c, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
		      == PASS, "354");
	check(cli(&c, "Subject: hi\r\n\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n") == PASS,
	      "AUTH inside a body");
	check(cli(&c, ".\r\nNOOP\r\n") == PASS, "end of data, NOOP");
	check(srv(&c, "250 2.0.0 Ok: queued\r\n250 2.0.0 Ok\r\n") == PASS,
	      "replies");
	/* BDAT: chunks skipped by count, one spanning segments */
	check(cli(&c, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 30 LAST\r\nAUTH PLAIN x\r\n") == PASS,
	      "BDAT and the start of its chunk");
	check(cli(&c, "AUTH PLAIN yyyyyy\r\nRSET\r\n") == PASS,
	      "the rest of the chunk and RSET");
	check(srv(&c, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n") == PASS,
	      "replies");
	check(cli(&c, "AUTH LOGIN\r\n") == OK, "AUTH not reset");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command");

	/* SMTP smuggling: an end of data servers read apart */
	c = conn4(43101);
	to_ehlo(&c);
	cli(&c, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	srv(&c, "250 ok\r\n250 ok\r\n354 go\r\n");
	check(cli(&c, "body\r\n.\rAUTH PLAIN x\r\n.\r\n") == OK,
	      "ambiguous end of data passed");
	check(resets(STG_R_AMBIGUOUS_END) == 1, "ambiguous_end_of_data");

	/* a host given auth-only in the host map, port 25 encrypt */
	reset_maps();
	host_set("192.0.2.10", 32, STG_ACT_AUTH_ONLY);
	c = conn4(43102);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@b>\r\n") == PASS, "MAIL of an auth-only host");
	c = conn4(43103);
	inet_pton(AF_INET, "192.0.2.11", c.cli + 12);
	to_ehlo(&c);
	check(cli(&c, "MAIL FROM:<a@b>\r\n") == OK, "MAIL of another host");
}

/* Verbs taken as STARTTLS (case 25); one-way. */
static void t_upgrade_verbs(void)
{
	struct tconn c = conn4(43200);

	set_cfg(false, "X-ANONYMOUSTLS", 0);
	to_ehlo(&c);
	check(cli(&c, "X-ANONYMOUSTLS\r\n") == PASS, "X-ANONYMOUSTLS");
	check(srv(&c, "220 2.0.0 SMTP server ready\r\n") == PASS, "220");
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == PASS, "hello");
	check(sendn(&c, 0, server_hello, sizeof(server_hello) - 1) == PASS,
	      "server hello");
	check(phase(&c) == STG_TLS, "phase %d, want tls", phase(&c));
	c = conn4(43201);
	to_ehlo(&c);
	check(cli(&c, "X-ANONYMOUSTLS\r\nMAIL FROM:<a@b>\r\n") == OK,
	      "injection after X-ANONYMOUSTLS passed");
	check(resets(STG_R_STARTTLS_INJECTION) == 1, "starttls_injection");

	reset_maps();
	set_cfg(false, NULL, STG_CFG_ONE_WAY);
	c = conn4(43202);
	handshake(&c);
	check(cli(&c, "EHLO c.example.org\r\n") == PASS, "EHLO");
	check(cli(&c, "STARTTLS\r\n") == PASS, "STARTTLS");
	check(sendn(&c, 1, hello, sizeof(hello) - 1) == PASS, "hello");
	check(phase(&c) == STG_TLS, "one-way: phase %d, want tls", phase(&c));
	c = conn4(43203);
	handshake(&c);
	cli(&c, "EHLO c.example.org\r\n");
	cli(&c, "STARTTLS\r\n");
	check(cli(&c, "MAIL FROM:<a@b>\r\n") == OK, "one-way: MAIL passed");
	check(resets(STG_R_AFTER_REFUSED) == 1, "one-way: counted as refused");
}

/* Put IPv6 extension headers of the kinds @nh[0..n) (8 bytes each; a
 * fragment header with @frag_off) between the IPv6 header and what
 * follows it. */
static void ext_insert(struct pkt *p, const uint8_t *nh, int n,
		       uint16_t frag_off)
{
	struct ipv6hdr *ip6 = (void *)(p->b + p->l3);
	uint32_t at = p->l3 + sizeof(*ip6), add = 8 * n;
	uint8_t last = ip6->nexthdr;

	memmove(p->b + at + add, p->b + at, p->len - at);
	memset(p->b + at, 0, add);
	ip6->nexthdr = nh[0];
	for (int i = 0; i < n; i++) {
		uint8_t *h = p->b + at + 8 * i;

		h[0] = i + 1 < n ? nh[i + 1] : last;
		if (nh[i] == 44) /* fragment: offset and M in bytes 2-3 */
			*(uint16_t *)(h + 2) = htons(frag_off);
		else
			h[2] = 1, h[3] = 4; /* a PadN option */
	}
	ip6->payload_len = htons(ntohs(ip6->payload_len) + add);
	p->len += add;
	p->l4 += add;
}

/* Case 47: IPv6 extension headers walked, with a bound; non-TCP next
 * headers never read as TCP. */
static void t_ipv6_ext(void)
{
	static const uint8_t hbh_dst[] = { 0, 60 };
	static const uint8_t ten_dst[] = { 60, 60, 60, 60, 60, 60, 60, 60,
					   60, 60 };
	static const uint8_t frag[] = { 44 };
	static const char mail[] = "MAIL FROM:<alice@example.org>\r\n";
	struct tconn c = conn6(43300);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	ext_insert(&p, hbh_dst, 2, 0);
	check(run(&p, false) == OK, "MAIL behind hop-by-hop and destination options passed");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command");

	/* too many to walk: the ports are not known, dropped */
	reset_maps();
	c = conn6(43301);
	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	ext_insert(&p, ten_dst, 10, 0);
	check(run(&p, false) == SHOT, "a chain of 10 headers passed");
	check(counter(STG_C_UNINSPECTABLE) == 1, "uninspectable_dropped");

	/* a first fragment of a guarded connection: dropped */
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	ext_insert(&p, frag, 1, 1); /* offset 0, M */
	check(run(&p, false) == SHOT, "first fragment passed");
	check(counter(STG_C_FRAGMENTS) == 1, "fragments_dropped");
	/* a later fragment has no TCP header: never read as one */
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	ext_insert(&p, frag, 1, 8 << 3);
	check(run(&p, false) == PASS, "later fragment read as TCP");

	/* GRE (47) whose bytes would read as TCP to port 25 */
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	((struct ipv6hdr *)(p.b + p.l3))->nexthdr = 47;
	check(run(&p, false) == PASS, "GRE read as TCP");
}

/* --- differential: the program against the host build of the logic ------ */

#define DIFF_DIALOGUES 1500
#define DIFF_STEPS 40
#define DIFF_BUF 1024

static uint64_t drng = 0x9e3779b97f4a7c15ULL;

static uint32_t drand(uint32_t n)
{
	drng ^= drng >> 12;
	drng ^= drng << 25;
	drng ^= drng >> 27;
	return (uint32_t)((drng * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

struct dstep {
	int c2s;
	int forbidden;		/* a whole command line the policy forbids */
	size_t len;
	char b[DIFF_BUF];
};

struct dialogue {
	int auth_only;
	int n;
	struct dstep s[DIFF_STEPS];
};

static struct dstep *dadd(struct dialogue *d, int c2s, const char *fmt, ...)
{
	struct dstep *st = &d->s[d->n < DIFF_STEPS - 1 ? d->n++ : d->n];
	va_list ap;

	st->c2s = c2s;
	st->forbidden = 0;
	va_start(ap, fmt);
	st->len = vsnprintf(st->b, sizeof(st->b), fmt, ap);
	va_end(ap);
	return st;
}

/* Random case, as clients write verbs */
static const char *rcase(const char *w)
{
	static char out[4][64];
	static int slot;
	char *o = out[slot++ & 3];
	size_t i;

	for (i = 0; w[i] && i < 63; i++)
		o[i] = drand(4) ? w[i] : (char)(w[i] ^ (w[i] >= 'A' && w[i] <= 'Z' ? 0x20 : 0));
	o[i] = '\0';
	return o;
}

/* A random dialogue: greeting, allowed commands, forbidden ones, bodies
 * and BDAT chunks (auth-only), STARTTLS accepted or refused, a TLS
 * handshake, junk, pipelining. */
static void dgen(struct dialogue *d)
{
	static const char *const ok[] = { "EHLO client.example", "HELO c", "NOOP",
					   "RSET", "HELP" };
	static const char *const bad[] = { "MAIL FROM:<a@b>", "RCPT TO:<c@d>",
					   "VRFY alice", "EXPN staff", "ETRN x" };
	int tls = 0;

	d->n = 0;
	d->auth_only = drand(3) == 0;
	if (drand(4))
		dadd(d, 0, "220 mx.example ESMTP\r\n");
	else
		dadd(d, 0, "220-mx.example\r\n220 ESMTP\r\n");
	for (int k = 0; k < 10 && d->n < DIFF_STEPS - 6 && !tls; k++) {
		struct dstep *st;
		uint32_t what = drand(100);

		if (what < 35) {
			int lines = 1 + drand(3);

			st = dadd(d, 1, "%s", "");
			for (int l = 0; l < lines; l++)
				st->len += snprintf(st->b + st->len,
						    sizeof(st->b) - st->len, "%s%s",
						    rcase(ok[drand(5)]),
						    drand(5) ? "\r\n" : "\n");
			st = dadd(d, 0, "%s", "");
			for (int l = 0; l < lines; l++)
				st->len += snprintf(st->b + st->len,
						    sizeof(st->b) - st->len, "%s",
						    drand(2) ? "250 ok\r\n"
							     : "250-x\r\n250 ok\r\n");
		} else if (what < 50) {
			st = dadd(d, 1, "%s\r\n", rcase(bad[drand(5)]));
			st->forbidden = !d->auth_only;
			dadd(d, 0, "250 ok\r\n");
		} else if (what < 58) {
			st = dadd(d, 1, "%s PLAIN AGFsaWNl\r\n", rcase("AUTH"));
			st->forbidden = 1;
			dadd(d, 0, "503 5.5.1 no\r\n");
		} else if (what < 68) {
			/* DATA and a body (under encrypt DATA itself is bad) */
			st = dadd(d, 1, "%s\r\n", rcase("DATA"));
			st->forbidden = !d->auth_only;
			dadd(d, 0, "354 go ahead\r\n");
			dadd(d, 1, "Subject: x\r\n\r\n%sAUTH PLAIN x\r\n..dot\r\n.\r\n",
			     drand(2) ? "MAIL FROM:<x@y>\r\n" : "");
			dadd(d, 0, "250 queued\r\n");
		} else if (what < 74 && d->auth_only) {
			st = dadd(d, 1, "BDAT 17 LAST\r\nAUTH PLAIN x\r\n...%s\r\n",
				  rcase("NOOP"));
			dadd(d, 0, "250 17 octets\r\n250 ok\r\n");
		} else if (what < 86) {
			dadd(d, 1, "%s\r\n", rcase("STARTTLS"));
			if (drand(4)) {
				dadd(d, 0, "220 2.0.0 Ready to start TLS\r\n");
				st = dadd(d, 1, "%s", "");
				memcpy(st->b, "\x16\x03\x01\x00\x30\x01\x00\x00\x2c"
					      "MAIL FROM:<x@y>\r\n", 26);
				st->len = 26;
				st = dadd(d, 0, "%s", "");
				memcpy(st->b, "\x16\x03\x03\x00\x40\x02\x00", 7);
				st->len = 7;
				tls = 1;
			} else {
				dadd(d, 0, "454 4.7.0 TLS not available\r\n");
			}
		} else {
			/* junk: the model judges it */
			st = dadd(d, 1, "%s", "");
			st->len = 1 + drand(12);
			for (size_t i = 0; i < st->len; i++)
				st->b[i] = drand(3) ? 'A' + drand(26) : drand(256);
			st->b[st->len++] = '\n';
			dadd(d, 0, "500 5.5.2 Error\r\n");
		}
	}
	if (tls) {
		struct dstep *st = dadd(d, 1, "%s", "");

		for (st->len = 0; st->len < 200; st->len++)
			st->b[st->len] = drand(256);
	}
}

/* Feed a dialogue to the program and to the host logic, each step cut
 * into random segments: the same segment must be the first violation,
 * with the same phase before it; a forbidden line must not pass. */
static const char *drun(const struct dialogue *d, uint16_t port)
{
	static char why[256];
	struct smtp_upgrade up = {};
	struct tconn c = conn4(port);
	struct smtp_state s;

	smtp_init(&s, 0);
	if (d->auth_only)
		s.policy = SMTP_P_AUTH_ONLY;
	handshake(&c);
	for (int i = 0; i < d->n; i++) {
		const struct dstep *st = &d->s[i];
		size_t from = 0;

		while (from < st->len) {
			size_t n = drand(3) ? st->len - from : 1 + drand(st->len - from);
			struct fed f = st->c2s ? feed_client(&s, &up, st->b + from, n)
					       : feed_server(&s, st->b + from, n);
			__u32 r = sendn(&c, st->c2s, st->b + from, n);

			if ((r == OK) != (f.verdict != 0) || (r != OK && r != PASS))
				return snprintf(why, sizeof(why),
						"step %d (%c, bytes %zu+%zu): program %s, host %d",
						i, st->c2s ? 'C' : 'S', from, n,
						r == OK ? "reset" : r == PASS ? "passed" : "dropped",
						f.verdict), why;
			if (f.verdict)
				return NULL;
			if (phase(&c) != (int)s.phase)
				return snprintf(why, sizeof(why),
						"step %d: program phase %d, host %d",
						i, phase(&c), s.phase), why;
			from += n;
		}
		if (st->forbidden)
			return snprintf(why, sizeof(why),
					"step %d: a forbidden line passed: %.40s",
					i, st->b), why;
	}
	return NULL;
}

static void t_differential(void)
{
	static const int port25[] = { 25, 0 };
	static struct dialogue d;
	int resets = 0, passes = 0;

	for (int k = 0; k < DIFF_DIALOGUES; k++) {
		const char *bad;

		dgen(&d);
		reset_maps();
		configure(STG_MODE_ENFORCE, STG_ACT_REQUIRE_TLS, port25);
		if (d.auth_only)
			set_cfg(true, NULL, 0);
		bad = drun(&d, 20000 + k % 40000);
		if (bad) {
			check(false, "dialogue %d (%s): %s", k,
			      d.auth_only ? "auth-only" : "encrypt", bad);
			return;
		}
		if (counter(STG_C_RESETS + STG_R_PLAINTEXT_COMMAND) ||
		    counter(STG_C_RESETS + STG_R_STARTTLS_INJECTION) ||
		    counter(STG_C_RESETS + STG_R_TLS_WITHOUT_GO_AHEAD) ||
		    counter(STG_C_RESETS + STG_R_AFTER_REFUSED))
			resets++;
		else
			passes++;
	}
	/* a generator that lost its balance would test little */
	check(resets > DIFF_DIALOGUES / 5 && passes > DIFF_DIALOGUES / 5,
	      "unbalanced: %d reset, %d passed", resets, passes);
}

/* Case 37: BIG TCP (and some TSO captures) carry an IPv4 total length
 * of 0 on GSO packets: the payload's length comes from the packet. On a
 * packet that is not GSO, a length of 0 is one the stack drops. */
static void t_big_tcp(void)
{
	static const char mail[] = "NOOP\r\nMAIL FROM:<alice@example.org>\r\n";
	struct tconn c = conn4(43500);
	struct pkt p;

	to_ehlo(&c);
	pkt_build(&p, &c, 1, F_ACK | F_PSH, c.cseq, c.sseq, mail,
		  sizeof(mail) - 1, NULL, 0);
	((struct iphdr *)(p.b + p.l3))->tot_len = 0;
	pkt_fix_ip4(&p);
	check(run(&p, false) == PASS, "tot_len 0, not GSO: not passed unjudged");
	check(phase(&c) == STG_PLAIN, "phase %d", phase(&c));
	check(run_gso(&p, false, 1448) == OK, "MAIL in a BIG TCP packet passed");
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command");
}

/* Case 7: long lines. A 3,000-byte EHLO argument in three segments
 * passes; a 3,000-byte MAIL FROM line is reset on the segment that shows
 * its verb; a line past 4,096 bytes is reset where it crosses (the line
 * state does not wrap into a false new line). */
static void t_long_lines(void)
{
	static char seg[1000];
	struct tconn c = conn4(43400);
	uint32_t at;

	memset(seg, 'a', sizeof(seg));
	handshake(&c);
	srv(&c, "220 mx ESMTP\r\n");
	memcpy(seg, "EHLO ", 5);
	check(sendn(&c, 1, seg, sizeof(seg)) == PASS, "EHLO, 1st part");
	memset(seg, 'a', sizeof(seg));
	check(sendn(&c, 1, seg, sizeof(seg)) == PASS, "EHLO, 2nd part");
	memcpy(seg + sizeof(seg) - 2, "\r\n", 2);
	check(sendn(&c, 1, seg, sizeof(seg)) == PASS, "EHLO, 3rd part");
	check(srv(&c, "250 mx\r\n") == PASS, "EHLO's reply");

	memcpy(seg, "MAIL FROM:<", 11);
	memset(seg + 11, 'a', sizeof(seg) - 11);
	at = c.cseq;
	check(sendn(&c, 1, seg, sizeof(seg)) == OK,
	      "the segment with the MAIL verb passed");
	check_rst(&c, at, c.sseq);

	/* NOOP and 70,000 bytes: reset in the segment that crosses 4,096 */
	reset_maps();
	c = conn4(43401);
	to_ehlo(&c);
	memset(seg, 'x', sizeof(seg));
	memcpy(seg, "NOOP ", 5);
	for (int i = 0; i < 70; i++) {
		__u32 want = i < 4 ? PASS : OK;

		if (sendn(&c, 1, seg, sizeof(seg)) != want) {
			check(false, "segment %d of a long NOOP line: want %s",
			      i, want == PASS ? "pass" : "reset");
			break;
		}
		if (want == OK)
			break;
		memset(seg, 'x', 5);
	}
	check(resets(STG_R_PLAINTEXT_COMMAND) == 1, "plaintext_command");
}

/* Cases 43, 44: a table of 256 entries, 100k spoofed SYNs and 10k short
 * sessions (half leave with QUIT and FINs, half are reset), while one
 * session waits between STARTTLS's 220 and its hello and another is
 * plaintext after EHLO: both are judged right afterwards (evicted, they
 * are picked up: the hello passes once the server answers in TLS, the
 * MAIL is reset). No state is made for a SYN alone. */
static void t_flood(void)
{
	struct starttls_guard_bpf *main_skel = skel;
	bool loop = skel->rodata->stg_loop;
	struct tconn tls = conn4(44000), plain = conn4(44001), c;
	struct pkt p;

	skel = starttls_guard_bpf__open();
	if (!skel || bpf_map__set_max_entries(skel->maps.conns, 256) ||
	    (stg_pick_scanner(skel, loop ? STG_SCAN_LOOP : STG_SCAN_CHAIN),
	     starttls_guard_bpf__load(skel)) || stg_fill_jmp(skel)) {
		check(false, "loading with a small table");
		goto out;
	}
	reset_maps();
	to_ehlo(&tls);
	cli(&tls, "STARTTLS\r\n");
	srv(&tls, "220 2.0.0 Ready to start TLS\r\n");
	to_ehlo(&plain);

	for (uint32_t i = 0; i < 100000; i++) {
		c = conn4(1024 + i % 60000);
		c.cli[13] = 51;
		c.cli[12] = 198;
		c.cli[14] = 100;
		c.cli[15] = i / 60000;
		pkt_build(&p, &c, 1, F_SYN, i * 7919, 0, NULL, 0, NULL, 0);
		if (run(&p, false) != PASS) {
			check(false, "SYN %u not passed", i);
			goto out;
		}
	}
	check(entries() == 2, "%d entries after a SYN flood, want 2", entries());
	for (int i = 0; i < 10000; i++) {
		c = conn4(1024 + i);
		inet_pton(AF_INET, i & 1 ? "203.0.113.7" : "203.0.113.8",
			  c.cli + 12);
		to_ehlo(&c);
		if (i & 1) {
			cli(&c, "MAIL FROM:<spam@example.net>\r\n");
			bare(&c, 1, F_RST | F_ACK);
			continue;
		}
		cli(&c, "QUIT\r\n");
		srv(&c, "221 bye\r\n");
		bare(&c, 0, F_FIN | F_ACK);
		c.sseq++;
		bare(&c, 1, F_FIN | F_ACK);
		c.cseq++;
		bare(&c, 0, F_ACK);
	}
	check(resets(STG_R_PLAINTEXT_COMMAND) == 5000, "%llu resets, want 5000",
	      (unsigned long long)resets(STG_R_PLAINTEXT_COMMAND));
	/* what stats reports as evicted: made, less closed, less left */
	check(counter(STG_C_CONNECTIONS) > counter(STG_C_CLOSED) + entries(),
	      "no eviction counted: %llu made, %llu closed, %d left",
	      (unsigned long long)counter(STG_C_CONNECTIONS),
	      (unsigned long long)counter(STG_C_CLOSED), entries());
	check(sendn(&tls, 1, hello, sizeof(hello) - 1) == PASS,
	      "the waiting hello not passed");
	check(sendn(&tls, 0, server_hello, sizeof(server_hello) - 1) == PASS,
	      "the server hello not passed");
	check(phase(&tls) == STG_TLS, "waiting session: phase %d", phase(&tls));
	check(cli(&plain, "MAIL FROM:<a@example.org>\r\n") == OK,
	      "MAIL of the session after EHLO passed");
out:
	starttls_guard_bpf__destroy(skel);
	skel = main_skel;
}

/* One event per decision: a reset with the verb alone, an upgrade, an
 * exempt, a denied and a monitored connection; a connection's events
 * and a CPU's are limited, and those held back counted. */
static void t_events(void)
{
	static const int port25[] = { 25, 0 };
	struct tconn c = conn4(41000);
	struct pkt p;
	__u64 mail[2];
	struct timespec t0, t1;
	cpu_set_t one;
	int sent = 3000, got = 0;

	to_ehlo(&c);
	check(take_events() == 0, "events before a decision");
	cli(&c, "MAIL FROM:<alice@example.org>\r\n");
	check_event(&c, STG_EV_RESET, STG_R_PLAINTEXT_COMMAND, STG_PLAIN);
	smtp_pack_verb("MAIL", mail);
	check(evs[0].verb[0] == mail[0] && evs[0].verb[1] == 0,
	      "the verb is not MAIL alone: %.16s", (char *)evs[0].verb);

	c = conn6(41001);
	to_tls(&c);
	check_event(&c, STG_EV_TLS, 0, STG_TLS_HELLO);

	host_set("192.0.2.10", 32, STG_ACT_EXEMPT);
	c = conn4(41002);
	to_ehlo(&c);
	check_event(&c, STG_EV_EXEMPT, 0, STG_PLAIN);
	cli(&c, "MAIL FROM:<a@example.org>\r\n");
	check(take_events() == 0, "an exempt connection's MAIL sent an event");

	reset_maps();
	host_set("192.0.2.10", 32, STG_ACT_DENY);
	c = conn4(41003);
	pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, NULL, 0, NULL, 0);
	run(&p, false);
	check_event(&c, STG_EV_DENIED, STG_R_DENIED_HOST, STG_PLAIN);

	reset_maps();
	configure(STG_MODE_MONITOR, STG_ACT_REQUIRE_TLS, port25);
	c = conn4(41004);
	to_ehlo(&c);
	cli(&c, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	check_event(&c, STG_EV_MONITOR, STG_R_PLAINTEXT_COMMAND, STG_PLAIN);
	smtp_pack_verb("AUTH", mail);
	check(evs[0].verb[0] == mail[0] && evs[0].verb[1] == 0,
	      "the verb is not AUTH alone: %.16s", (char *)evs[0].verb);

	/* One-way (the server's packets not seen): the client's hello
	 * after STARTTLS is the upgrade, counted and sent too. */
	reset_maps();
	set_cfg(false, NULL, STG_CFG_ONE_WAY);
	c = conn4(41006);
	handshake(&c);
	cli(&c, "EHLO c.example.org\r\n");
	cli(&c, "STARTTLS\r\n");
	sendn(&c, 1, hello, sizeof(hello) - 1);
	check_event(&c, STG_EV_TLS, 0, STG_TLS_GO);
	check(counter(STG_C_TLS_UPGRADES) == 1, "one-way upgrade not counted");

	/* A connection that has sent its share sends no more. */
	reset_maps();
	c = conn4(41005);
	to_ehlo(&c);
	{
		struct stg_conn_key k = { .cli_port = c.cport,
					  .srv_port = c.sport };
		struct stg_conn v;
		int fd = bpf_map__fd(skel->maps.conns);

		memcpy(k.cli_addr, c.cli, 16);
		memcpy(k.srv_addr, c.srv, 16);
		bpf_map_lookup_elem(fd, &k, &v);
		v.events = STG_EVENTS_PER_CONN;
		bpf_map_update_elem(fd, &k, &v, BPF_EXIST);
	}
	check(cli(&c, "MAIL FROM:<a@example.org>\r\n") == OK, "not reset");
	check(take_events() == 0, "over the connection's limit: sent");
	check(counter(STG_C_EVENTS_LIMITED) == 1, "held back, not counted");

	/* A flood of denied SYNs from one CPU: at most STG_EVENTS_PER_SEC
	 * in each second it spans, the rest counted; none lost. */
	reset_maps();
	host_set("192.0.2.0", 24, STG_ACT_DENY);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < sent; i++) {
		c = conn4(20000 + i);
		pkt_build(&p, &c, 1, F_SYN, c.cseq - 1, 0, NULL, 0, NULL, 0);
		run(&p, false);
		if (i % 500 == 499)
			got += (take_events(), evs_seen);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	got += (take_events(), evs_seen);
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++)
		CPU_SET(i, &one);
	sched_setaffinity(0, sizeof(one), &one);
	check(got + counter(STG_C_EVENTS_LIMITED) == (__u64)sent,
	      "%d events + %llu held back, want %d", got,
	      (unsigned long long)counter(STG_C_EVENTS_LIMITED), sent);
	check(got <= STG_EVENTS_PER_SEC * (t1.tv_sec - t0.tv_sec + 2),
	      "%d events in %ld s", got, (long)(t1.tv_sec - t0.tv_sec + 1));
	check(counter(STG_C_EVENTS_LOST) == 0, "events lost");
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "IPv4 MAIL FROM after EHLO is reset; RST seq/ack (cases 19, 20, 40)", t_mail_v4 },
	{ "IPv6 MAIL FROM after EHLO is reset", t_mail_v6 },
	{ "forbidden verbs reset: default deny (cases 5, 19, 20, 23)", t_forbidden_verbs },
	{ "allowed verbs pass", t_allowed_verbs },
	{ "lowercase, bare LF, pipelining (cases 12, 22, 24)", t_lowercase_barelf_pipelined },
	{ "split lines (cases 6, 33)", t_split_lines },
	{ "IPv4 STARTTLS + 220 + ClientHello is TLS (case 26)", t_tls_v4 },
	{ "IPv6 STARTTLS + 220 + ClientHello is TLS", t_tls_v6 },
	{ "hello answered by an alert and a 454: plaintext again (case 10)", t_tls_failed },
	{ "STARTTLS refused stays plaintext (cases 8, 9)", t_starttls_refused },
	{ "injection after STARTTLS (cases 1, 2)", t_injection },
	{ "after 220: not TLS, response injection (case 3)", t_after_220 },
	{ "retransmission, overlap, gap (case 60)", t_sequence },
	{ "exempt and deny CIDRs (cases 18, 59)", t_hosts },
	{ "monitor mode", t_monitor },
	{ "other traffic and ports", t_other_traffic },
	{ "TCP options, IPv4 options, VLAN (cases 45, 46, 61)", t_headers },
	{ "IP fragments (case 42)", t_fragments },
	{ "mid-stream pickup", t_pickup },
	{ "egress hook (case 29)", t_egress },
	{ "SYN-ACK with a new ISN starts afresh", t_reuse },
	{ "forged SYN-ACK cannot skip the stream", t_forged_synack },
	{ "forged server packets of a local server dropped", t_spoofed_server },
	{ "segments the server reads differently or discards", t_unacceptable },
	{ "Ethernet padding is no payload", t_padding },
	{ "tiny first fragment, deep VLAN stack dropped", t_unparseable },
	{ "SYN-ACK with another ISN restarts tracking", t_synack_isn },
	{ "IP headers the stack drops or reads another way", t_ip_checks },
	{ "more discarded segments; urgent pointer in sequence only", t_discarded_more },
	{ "mid-stream pickup of TLS and of plaintext", t_pickup_midstream },
	{ "replies in order; TLS only after a go-ahead (cases 8, 9)", t_replies },
	{ "entries end at FIN/RST (case 28)", t_close },
	{ "data on a SYN is judged (case 27)", t_tfo },
	{ "--direction inbound/outbound", t_direction },
	{ "ways around the state: SYN data, RST, TFO, one-way (review)", t_state_attacks },
	{ "implicit-TLS ports", t_implicit_tls },
	{ "policy auth-only: bodies followed, AUTH reset", t_auth_only },
	{ "upgrade verbs (case 25), one-way", t_upgrade_verbs },
	{ "IPv6 extension headers, bounded (case 47)", t_ipv6_ext },
	{ "differential: random dialogues, random segments, program = host logic", t_differential },
	{ "a SYN flood and 10k sessions on a small table (cases 43, 44)", t_flood },
	{ "long lines (case 7)", t_long_lines },
	{ "BIG TCP: IPv4 total length 0 (case 37)", t_big_tcp },
	{ "events: one per decision, verb only, rate-limited", t_events },
};

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	(void)argc;
	(void)argv;
	/* A network namespace of our own, loopback up: redirected RSTs and
	 * socket lookups stay in it. */
	if (unshare(CLONE_NEWNET) || system("ip link set lo up")) {
		fprintf(stderr, "couldn't make a network namespace\n");
		printf("0 passed, 1 failed\n");
		return 1;
	}
	/* Every test with each pair of scan programs the kernel can load:
	 * chained by tail calls (any kernel), with bpf_loop() (5.17 on). */
	for (int loop = 0; loop <= stg_has_loop(); loop++) {
		const char *variant = loop ? "bpf_loop" : "tail calls";

		skel = starttls_guard_bpf__open();
		if (skel)
			stg_pick_scanner(skel, loop ? STG_SCAN_LOOP
						    : STG_SCAN_CHAIN);
		if (!skel || starttls_guard_bpf__load(skel) ||
		    stg_fill_jmp(skel)) {
			printf("FAIL - packet: load with %s: %s\n", variant,
			       strerror(errno));
			starttls_guard_bpf__destroy(skel);
			failed++;
			continue;
		}
		evbuf = ring_buffer__new(bpf_map__fd(skel->maps.events),
					 on_event, NULL, NULL);
		for (unsigned int i = 0; evbuf && i < sizeof(tests) / sizeof(*tests); i++) {
			int before = failed_checks;

			reset_maps();
			tests[i].fn();
			if (failed_checks == before) {
				passed++;
				printf("ok - packet (%s): %s\n", variant,
				       tests[i].name);
			} else {
				failed++;
				printf("FAIL - packet (%s): %s\n", variant,
				       tests[i].name);
			}
		}
		if (!evbuf) {
			printf("FAIL - packet: the events ring buffer: %s\n",
			       strerror(errno));
			failed++;
		}
		ring_buffer__free(evbuf);
		starttls_guard_bpf__destroy(skel);
	}
	/* Every case is named on every kernel: those of a variant the
	 * kernel cannot load, as skipped, with why. */
	if (!stg_has_loop()) {
		for (unsigned int i = 0; i < sizeof(tests) / sizeof(*tests); i++)
			printf("skip - packet (bpf_loop): %s: no bpf_loop() "
			       "before Linux 5.17 (the loader chains tail calls "
			       "here)\n", tests[i].name);
		printf("%zu skipped\n", sizeof(tests) / sizeof(*tests));
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
