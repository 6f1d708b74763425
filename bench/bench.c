// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-packet cost of the guard, through BPF_PROG_TEST_RUN: the real
 * program, its own private maps (nothing pinned, no interface touched),
 * against a floor measured in the same run (a TC program that returns
 * TC_ACT_OK at once), and against the size of the connection table.
 *
 * Packets that leave the state as it was (other traffic, an encrypted or
 * exempt connection) run ROUNDS times REPEAT times in the kernel's loop.
 * A plaintext line changes the connection's state (a second run would see
 * a retransmission), so each run of those is one BPF_PROG_TEST_RUN after
 * the state is written back; the floor is then measured the same way.
 * The kernel's own timer gives the ns per run (no system call in it).
 *
 * Usage: bench [--quick] [--json FILE]. Prints a table; writes JSON.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/udp.h>

#include "pkt.h"
#include "starttls_guard.h"
#include "jmp.h"

static struct starttls_guard_bpf *skel;
static int floor_fd;
static int rounds = 7;
static __u32 repeat = 1000000, singles = 100000;

/* --- measuring ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	const char *name;
	double ns, lo, hi;	/* median of the rounds, smallest, largest */
	double floor_ns;
};

/* ns per run of @fd on @p, @n runs in the kernel's loop */
static double run_loop(int fd, const struct pkt *p, __u32 n)
{
	static __u8 out[PKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b,
		    .data_size_in = p->len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = n);

	if (bpf_prog_test_run_opts(fd, &o)) {
		fprintf(stderr, "bench: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
		exit(1);
	}
	return o.duration;
}

/* A connection's state, written back before each single run */
struct state {
	struct stg_conn_key key;
	struct stg_conn conn;
};

/* The median of @rounds rounds; a round: @n runs in the kernel's loop,
 * or (with @st) @n single runs, each after the state is written back. */
static void measure(int fd, const struct pkt *p, const struct state *st,
		    __u32 n, double *med, double *lo, double *hi)
{
	double r[32];
	int conns = bpf_map__fd(skel->maps.conns);

	for (int i = 0; i < rounds; i++) {
		double sum = 0;

		if (!st) {
			r[i] = run_loop(fd, p, n);
			continue;
		}
		for (__u32 k = 0; k < n; k++) {
			bpf_map_update_elem(conns, &st->key, &st->conn, BPF_ANY);
			sum += run_loop(fd, p, 1);
		}
		r[i] = sum / n;
	}
	qsort(r, rounds, sizeof(*r), cmp_double);
	*med = r[rounds / 2];
	*lo = r[0];
	*hi = r[rounds - 1];
}

static struct result bench(const char *name, const struct pkt *p,
			   const struct state *st)
{
	struct result r = { .name = name };
	double lo, hi;
	__u32 n = st ? singles : repeat;

	measure(bpf_program__fd(skel->progs.stg_ingress), p, st, n, &r.ns,
		&r.lo, &r.hi);
	measure(floor_fd, p, st, n, &r.floor_ns, &lo, &hi);
	return r;
}

/* --- set-up -------------------------------------------------------------- */

static __u32 run1(const struct pkt *p)
{
	static __u8 out[PKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b,
		    .data_size_in = p->len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);

	bpf_prog_test_run_opts(bpf_program__fd(skel->progs.stg_ingress), &o);
	return o.retval;
}

static void send_seg(struct tconn *c, int c2s, const char *s, size_t n)
{
	struct pkt p;

	pkt_build(&p, c, c2s, 0x18, c2s ? c->cseq : c->sseq,
		  c2s ? c->sseq : c->cseq, s, n, NULL, 0);
	run1(&p);
	if (c2s)
		c->cseq += n;
	else
		c->sseq += n;
}

static struct tconn conn(uint16_t cport)
{
	struct tconn c = { .cport = cport, .sport = 25, .cseq = 1000,
			   .sseq = 50000 };

	c.cli[10] = c.cli[11] = c.srv[10] = c.srv[11] = 0xff;
	c.cli[12] = 192, c.cli[14] = 2, c.cli[15] = 10;
	c.srv[12] = 192, c.srv[14] = 2, c.srv[15] = 25;
	return c;
}

static struct stg_conn_key key_of(const struct tconn *c)
{
	struct stg_conn_key k = { .cli_port = c->cport, .srv_port = c->sport };

	memcpy(k.cli_addr, c->cli, 16);
	memcpy(k.srv_addr, c->srv, 16);
	return k;
}

/* Handshake, greeting, EHLO and its reply */
static void to_ehlo(struct tconn *c)
{
	struct pkt p;
	static const char reply[] = "250-mx.example.org\r\n250-PIPELINING\r\n"
				    "250 STARTTLS\r\n";

	pkt_build(&p, c, 1, 0x02, c->cseq - 1, 0, NULL, 0, NULL, 0);
	run1(&p);
	pkt_build(&p, c, 0, 0x12, c->sseq - 1, c->cseq, NULL, 0, NULL, 0);
	run1(&p);
	send_seg(c, 0, "220 mx.example.org ESMTP\r\n", 26);
	send_seg(c, 1, "EHLO c.example.org\r\n", 20);
	send_seg(c, 0, reply, sizeof(reply) - 1);
}

/* ... then STARTTLS, its 220 and both hellos: encrypted */
static void to_tls(struct tconn *c)
{
	to_ehlo(c);
	send_seg(c, 1, "STARTTLS\r\n", 10);
	send_seg(c, 0, "220 go ahead\r\n", 14);
	send_seg(c, 1, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
	send_seg(c, 0, "\x16\x03\x03\x00\x7a\x02\x00\x00\x76", 9);
}

static void set_config(void)
{
	struct stg_config cfg = { .mode = STG_MODE_ENFORCE,
				  .default_action = STG_ACT_REQUIRE_TLS };
	__u32 zero = 0;

	cfg.ports[0] |= 1ULL << 25;
	bpf_map_update_elem(bpf_map__fd(skel->maps.settings), &zero, &cfg, 0);
}

static void exempt(const __u8 addr[16])
{
	struct stg_host_key k = { .prefixlen = 128 };
	struct stg_host h = { .action = STG_ACT_EXEMPT, .prefixlen = 128 };

	memcpy(k.addr, addr, 16);
	bpf_map_update_elem(bpf_map__fd(skel->maps.hosts), &k, &h, 0);
}

/* The state of @c now, and a packet of @pay from its client */
static void plain_case(struct tconn *c, const char *pay, size_t n,
		       struct state *st, struct pkt *p)
{
	to_ehlo(c);
	st->key = key_of(c);
	bpf_map_lookup_elem(bpf_map__fd(skel->maps.conns), &st->key, &st->conn);
	pkt_build(p, c, 1, 0x18, c->cseq, c->sseq, pay, n, NULL, 0);
}

static int load(__u32 max_conns)
{
	skel = starttls_guard_bpf__open();
	if (!skel)
		return -1;
	bpf_map__set_max_entries(skel->maps.conns, max_conns);
	stg_pick_scanner(skel, STG_SCAN_AUTO);
	if (starttls_guard_bpf__load(skel) || stg_fill_jmp(skel))
		return -1;
	set_config();
	return 0;
}

/* Fill the table with @n connections other than the measured ones */
static void fill(__u32 n)
{
	int fd = bpf_map__fd(skel->maps.conns);
	struct stg_conn v = { .smtp.phase = STG_TLS };

	for (__u32 i = 0; i < n; i++) {
		struct stg_conn_key k = { .cli_port = 1024 + i % 60000,
					  .srv_port = 25 };

		k.cli_addr[10] = k.cli_addr[11] = 0xff;
		k.cli_addr[12] = 10;
		k.cli_addr[13] = i >> 16;
		k.cli_addr[14] = i >> 8;
		k.cli_addr[15] = i;
		k.srv_addr[10] = k.srv_addr[11] = 0xff;
		k.srv_addr[12] = 198, k.srv_addr[13] = 51, k.srv_addr[15] = 7;
		bpf_map_update_elem(fd, &k, &v, BPF_ANY);
	}
}

/* memlock of map @fd, from its fdinfo (as bpftool map show reports it) */
static long long memlock(int fd)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static int floor_prog(void)
{
	/* r0 = TC_ACT_OK; exit */
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = 0 },
		{ .code = 0x95 },
	};

	return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "floor", "GPL", insns, 2,
			     NULL);
}

/* --- main ---------------------------------------------------------------- */

static void print(FILE *json, const struct result *r, bool last)
{
	printf("  %-36s %8.1f ns  (%6.1f-%6.1f)  floor %6.1f ns  x%.2f\n",
	       r->name, r->ns, r->lo, r->hi, r->floor_ns, r->ns / r->floor_ns);
	fprintf(json, "    {\"case\": \"%s\", \"ns\": %.1f, \"min\": %.1f, "
		"\"max\": %.1f, \"floor_ns\": %.1f, \"ratio\": %.3f}%s\n",
		r->name, r->ns, r->lo, r->hi, r->floor_ns, r->ns / r->floor_ns,
		last ? "" : ",");
}

int main(int argc, char **argv)
{
	const char *json_path = "bench/results.json";
	struct result res[16];
	int nres = 0;
	struct pkt p;
	struct state st;
	struct tconn c;
	char big[1448], lines[64];
	static const __u32 scales[] = { 1000, 100000, 1000000 };
	static const __u32 sizes[] = { 65536, 262144, 1048576 };
	struct utsname u;
	struct state *tls_state;
	cpu_set_t one;
	FILE *json;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			rounds = 3;
			repeat = 100000;
			singles = 10000;
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_path = argv[++i];
		} else {
			fprintf(stderr, "usage: bench [--quick] [--json FILE]\n");
			return 2;
		}
	}
	/* One CPU: the per-CPU maps and the timer stay put. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);
	libbpf_set_print(NULL);
	floor_fd = floor_prog();
	if (floor_fd < 0 || load(1 << 20)) {
		fprintf(stderr, "bench: couldn't load the programs (run as "
			"root): %s\n", strerror(errno));
		return 1;
	}
	json = fopen(json_path, "w");
	if (!json) {
		fprintf(stderr, "bench: %s: %s\n", json_path, strerror(errno));
		return 1;
	}
	uname(&u);
	printf("per-packet cost through BPF_PROG_TEST_RUN (median of %d rounds; "
	       "scanner %s)\n", rounds, stg_has_loop() ? "bpf_loop" : "chained");
	fprintf(json, "{\n  \"kernel\": \"%s\",\n  \"rounds\": %d,\n"
		"  \"repeat\": %u,\n  \"singles\": %u,\n  \"per_packet\": [\n",
		u.release, rounds, repeat, singles);

	/* Other traffic: UDP, and TCP on another port */
	c = conn(40000);
	pkt_build(&p, &c, 1, 0x18, 1, 1, "x", 1, NULL, 0);
	p.b[p.l3 + 9] = 17; /* UDP: the parser stops at the protocol */
	{
		struct udphdr *uh = (void *)(p.b + p.l4);

		uh->len = htons(p.len - p.l4);
		pkt_fix_ip4(&p);
	}
	res[nres++] = bench("udp", &p, NULL);
	c.sport = 443;
	memset(big, 'x', sizeof(big));
	pkt_build(&p, &c, 1, 0x18, 1, 1, big, 100, NULL, 0);
	res[nres++] = bench("tcp, another port", &p, NULL);

	/* An encrypted connection, an exempt one */
	c = conn(40001);
	to_tls(&c);
	pkt_build(&p, &c, 1, 0x18, c.cseq, c.sseq, big, 1448, NULL, 0);
	res[nres++] = bench("encrypted smtp (1448 bytes)", &p, NULL);
	c = conn(40002);
	c.cli[15] = 11;
	exempt(c.cli);
	to_ehlo(&c);
	pkt_build(&p, &c, 1, 0x18, c.cseq, c.sseq, big, 1448, NULL, 0);
	res[nres++] = bench("exempt connection (1448 bytes)", &p, NULL);

	/* Plaintext before TLS: judged byte by byte */
	c = conn(40003);
	plain_case(&c, "EHLO client.example.org\r\n", 25, &st, &p);
	res[nres++] = bench("plaintext EHLO line", &p, &st);
	{
		char pipe[128] = "";

		for (int i = 0; i < 10; i++)
			strcat(pipe, i % 2 ? "RSET\r\n" : "NOOP\r\n");
		c = conn(40004);
		plain_case(&c, pipe, strlen(pipe), &st, &p);
		res[nres++] = bench("10 pipelined lines", &p, &st);
	}
	memcpy(big, "NOOP ", 5);
	memset(big + 5, 'a', sizeof(big) - 7);
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	c = conn(40005);
	plain_case(&c, big, sizeof(big), &st, &p);
	res[nres++] = bench("1448-byte segment before TLS", &p, &st);
	for (int i = 0; i < nres; i++)
		print(json, &res[i], i == nres - 1);
	fprintf(json, "  ],\n  \"table_scale\": [\n");

	/* The same with the table holding 1k, 100k, 1M connections */
	printf("\nper-packet cost with the connection table filled\n");
	c = conn(40010);
	to_tls(&c);
	{
		/* kept aside: a full table may evict it while filling */
		static struct state tls;

		tls.key = key_of(&c);
		bpf_map_lookup_elem(bpf_map__fd(skel->maps.conns), &tls.key,
				    &tls.conn);
		tls_state = &tls;
	}
	for (unsigned int s = 0; s < sizeof(scales) / sizeof(*scales); s++) {
		struct result r[2];

		fill(scales[s]);
		bpf_map_update_elem(bpf_map__fd(skel->maps.conns), &tls_state->key,
				    &tls_state->conn, BPF_ANY);
		snprintf(lines, sizeof(lines), "encrypted, %u tracked", scales[s]);
		pkt_build(&p, &c, 1, 0x18, c.cseq, c.sseq, big, 1448, NULL, 0);
		r[0] = bench(strdup(lines), &p, NULL);
		{
			struct tconn d = conn(40011 + s);

			snprintf(lines, sizeof(lines), "EHLO line, %u tracked",
				 scales[s]);
			plain_case(&d, "EHLO client.example.org\r\n", 25, &st, &p);
			r[1] = bench(strdup(lines), &p, &st);
		}
		print(json, &r[0], false);
		print(json, &r[1], s == sizeof(scales) / sizeof(*scales) - 1);
	}
	starttls_guard_bpf__destroy(skel);

	/* Memory of the connection table at each size */
	printf("\nmemory of the connection table (memlock, as bpftool map show)\n");
	fprintf(json, "  ],\n  \"table_memory\": [\n");
	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
		long long m;

		if (load(sizes[s])) {
			fprintf(stderr, "bench: load with %u connections: %s\n",
				sizes[s], strerror(errno));
			return 1;
		}
		m = memlock(bpf_map__fd(skel->maps.conns));
		printf("  --max-connections %-8u %10.1f MiB  %5.0f bytes each\n",
		       sizes[s], m / 1048576.0, (double)m / sizes[s]);
		fprintf(json, "    {\"max_connections\": %u, \"memlock\": %lld, "
			"\"bytes_each\": %.1f}%s\n", sizes[s], m,
			(double)m / sizes[s], s == sizeof(sizes) / sizeof(*sizes) - 1 ? "" : ",");
		starttls_guard_bpf__destroy(skel);
	}
	fprintf(json, "  ]\n}\n");
	fclose(json);
	return 0;
}
