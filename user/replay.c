// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * replay: what would the guard have done with these captures? Every
 * packet of pcap and pcapng files (read with libpcap) goes through the
 * real program with BPF_PROG_TEST_RUN, on maps of its own: nothing is
 * pinned, no interface is touched. One line per connection comes out:
 * its addresses, the state it was left in and the decision.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
/* libpcap's classic-BPF header clashes with the kernel's eBPF one */
#define PCAP_DONT_INCLUDE_PCAP_BPF_H
#include <pcap/dlt.h>
#include <pcap/pcap.h>

#include "cidr.h"
#include "guard.h"
#include "jmp.h"

/* What BPF_PROG_TEST_RUN takes for a TC program is at most a page: a
 * bigger packet (GRO and TSO make them, up to 64 KiB) is cut into
 * segments of this much payload, as the wire carried it. */
#define SEG_PAYLOAD 1448
#define FRAME_MAX 4000

/* One connection seen in the captures */
struct rconn {
	struct stg_conn_key key;
	__u64 packets;
	bool tracked;		/* the guard kept state for it */
	bool closed;		/* ... and removed it at the close */
	bool cut;		/* a packet of it was cut short by the snap length */
	__u8 phase;		/* the last state in the table */
	__u8 ev, reason;	/* the decision: its event, its reason */
};

static struct {
	struct rconn *c;
	size_t n, cap;		/* cap: a power of two */
	__u32 *order;		/* indexes in order of first packet */
} tab;

static __u32 key_hash(const struct stg_conn_key *k)
{
	const __u8 *b = (const void *)k;
	__u32 h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static struct rconn *conn_get(const struct stg_conn_key *k)
{
	size_t i;

	if (tab.n * 2 >= tab.cap) {
		size_t cap = tab.cap ? tab.cap * 2 : 1024;
		struct rconn *c = calloc(cap, sizeof(*c));
		__u32 *order = realloc(tab.order, cap * sizeof(*order));

		if (!c || !order) {
			free(c);
			free(order);
			return NULL;
		}
		tab.order = order;
		for (size_t n = 0; n < tab.n; n++) {
			struct rconn *o = &tab.c[tab.order[n]];

			for (i = key_hash(&o->key) & (cap - 1); c[i].packets;
			     i = (i + 1) & (cap - 1))
				;
			c[i] = *o;
			tab.order[n] = i;
		}
		free(tab.c);
		tab.c = c;
		tab.cap = cap;
	}
	for (i = key_hash(k) & (tab.cap - 1); tab.c[i].packets;
	     i = (i + 1) & (tab.cap - 1))
		if (!memcmp(&tab.c[i].key, k, sizeof(*k)))
			return &tab.c[i];
	tab.c[i].key = *k;
	tab.order[tab.n++] = i;
	return &tab.c[i];
}

/* The decision an event makes: a reset (or a denied host) stands over
 * anything else; otherwise the first. */
static int on_event(void *ctx, void *data, size_t len)
{
	const struct stg_event *e = data;
	struct rconn *c;

	(void)ctx;
	if (len < sizeof(*e) || !(c = conn_get(&e->key)))
		return 0;
	if (!c->packets)
		c->packets = 1; /* not seen in a packet: cannot happen */
	if (!c->ev || e->type == STG_EV_RESET || e->type == STG_EV_DENIED) {
		c->ev = e->type;
		c->reason = e->reason;
	}
	return 0;
}

/* --- packets ------------------------------------------------------------- */

/* A guarded connection's packet, as the program parses it (an Ethernet
 * frame with up to two VLAN tags; IPv4 or IPv6 with extension headers;
 * TCP). Returns the TCP header's offset, 0 if it is not such a packet. */
static __u32 tcp_of(const __u8 *f, __u32 len, const struct stg_config *cfg,
		    struct stg_conn_key *k, bool *c2s, __u32 *l3)
{
	__u32 off = ETH_HLEN;
	__u16 proto;
	__u8 nh;

	if (len < ETH_HLEN)
		return 0;
	proto = f[12] << 8 | f[13];
	for (int v = 0; v < 2 && (proto == ETH_P_8021Q || proto == ETH_P_8021AD);
	     v++) {
		if (len < off + 4)
			return 0;
		proto = f[off + 2] << 8 | f[off + 3];
		off += 4;
	}
	*l3 = off;
	memset(k, 0, sizeof(*k));
	if (proto == ETH_P_IP) {
		const struct iphdr *ip = (const void *)(f + off);

		if (len < off + sizeof(*ip) || ip->ihl < 5 ||
		    (ntohs(ip->frag_off) & 0x1fff) || ip->protocol != IPPROTO_TCP)
			return 0;
		k->cli_addr[10] = k->cli_addr[11] = 0xff;
		k->srv_addr[10] = k->srv_addr[11] = 0xff;
		memcpy(k->cli_addr + 12, &ip->saddr, 4);
		memcpy(k->srv_addr + 12, &ip->daddr, 4);
		off += ip->ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		const struct ipv6hdr *ip6 = (const void *)(f + off);

		if (len < off + sizeof(*ip6))
			return 0;
		memcpy(k->cli_addr, &ip6->saddr, 16);
		memcpy(k->srv_addr, &ip6->daddr, 16);
		nh = ip6->nexthdr;
		off += sizeof(*ip6);
		for (int i = 0; i < 8 && nh != IPPROTO_TCP; i++) {
			if (len < off + 8)
				return 0;
			if (nh == IPPROTO_FRAGMENT) {
				if ((f[off + 2] << 8 | f[off + 3]) & 0xfff8)
					return 0;
				nh = f[off];
				off += 8;
			} else if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
				   nh == IPPROTO_DSTOPTS) {
				nh = f[off];
				off += (f[off + 1] + 1) * 8;
			} else {
				return 0;
			}
		}
		if (nh != IPPROTO_TCP)
			return 0;
	} else {
		return 0;
	}
	if (len < off + sizeof(struct tcphdr))
		return 0;
	{
		const struct tcphdr *th = (const void *)(f + off);
		__u16 sport = ntohs(th->source), dport = ntohs(th->dest);
		__u8 a[16];

		if ((cfg->ports[dport >> 6] >> (dport & 63)) & 1)
			*c2s = true;
		else if ((cfg->ports[sport >> 6] >> (sport & 63)) & 1)
			*c2s = false;
		else
			return 0;
		k->cli_port = *c2s ? sport : dport;
		k->srv_port = *c2s ? dport : sport;
		if (!*c2s) {
			memcpy(a, k->cli_addr, 16);
			memcpy(k->cli_addr, k->srv_addr, 16);
			memcpy(k->srv_addr, a, 16);
		}
	}
	return off;
}

struct replay {
	struct starttls_guard_bpf *skel;
	struct ring_buffer *rb;
	struct stg_config cfg;
	void *evzero;		/* a zero value of the evlimit map */
	__u64 packets, cut, failed;
};

static int run_one(struct replay *r, const __u8 *f, __u32 len, bool cut)
{
	struct stg_conn_key k;
	struct stg_conn st;
	struct rconn *c = NULL;
	bool c2s = true;
	__u32 l3 = 0, zero = 0;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = len,
		    .repeat = 1);
	int hook_in, prog;

	if (tcp_of(f, len, &r->cfg, &k, &c2s, &l3)) {
		c = conn_get(&k);
		if (!c)
			return -ENOMEM;
		c->packets++;
		c->cut |= cut;
	}
	/* Seen at the guarded host's interface: inbound (its client's
	 * packets arrive) unless only outbound ones are judged. */
	hook_in = c2s == !(r->cfg.flags & STG_CFG_NO_INBOUND);
	prog = bpf_program__fd(hook_in ? r->skel->progs.stg_ingress
				       : r->skel->progs.stg_egress);
	/* Replay runs faster than the events' rate limit allows: each
	 * packet starts with a full allowance. */
	bpf_map_update_elem(bpf_map__fd(r->skel->maps.evlimit), &zero,
			    r->evzero, BPF_ANY);
	if (bpf_prog_test_run_opts(prog, &o)) {
		r->failed++;
		return 0;
	}
	r->packets++;
	ring_buffer__consume(r->rb);
	if (!c)
		return 0;
	if (!bpf_map_lookup_elem(bpf_map__fd(r->skel->maps.conns), &k, &st)) {
		c->tracked = true;
		c->closed = false;
		c->phase = st.smtp.phase;
	} else if (c->tracked) {
		c->closed = true;
	}
	return 0;
}

/* Set the IP length of frame @f (IP header at @l3) to its @len bytes */
static void set_ip_len(__u8 *f, __u32 l3, __u32 len)
{
	if (f[l3] >> 4 == 4) {
		struct iphdr *ip = (struct iphdr *)(f + l3);
		__u32 sum = 0;

		ip->tot_len = htons(len - l3);
		ip->check = 0;
		for (int i = 0; i < ip->ihl * 2; i++)
			sum += ((__u16 *)ip)[i];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		ip->check = ~sum;
	} else {
		((struct ipv6hdr *)(f + l3))->payload_len =
			htons(len - l3 - sizeof(struct ipv6hdr));
	}
}

/* Run frame @f. A capture taken before segmentation holds what TSO and
 * GRO made: an IP length of 0 (BIG TCP) and packets of up to 64 KiB,
 * bigger than a test run takes. Those are run as the wire carried
 * them: cut into SEG_PAYLOAD-byte segments (headers copied, lengths and
 * sequence numbers set, FIN and PSH on the last). */
static int run_frame(struct replay *r, __u8 *f, __u32 len, bool cut)
{
	static __u8 seg[FRAME_MAX];
	struct stg_conn_key k;
	bool c2s;
	__u32 l3, l4, hl, pay, seq;
	struct tcphdr *th;

	l4 = tcp_of(f, len, &r->cfg, &k, &c2s, &l3);
	if (l4 && len - l3 <= 0xffff && !cut &&
	    !(f[l3] >> 4 == 4 ? ((struct iphdr *)(f + l3))->tot_len
			      : ((struct ipv6hdr *)(f + l3))->payload_len))
		set_ip_len(f, l3, len);
	if (len <= FRAME_MAX)
		return run_one(r, f, len, cut);
	if (!l4 || len < l4 + ((const struct tcphdr *)(f + l4))->doff * 4u) {
		r->failed++; /* too big, and not a guarded TCP packet */
		return 0;
	}
	hl = l4 + ((const struct tcphdr *)(f + l4))->doff * 4;
	seq = ntohl(((const struct tcphdr *)(f + l4))->seq);
	for (pay = hl; pay < len; pay += SEG_PAYLOAD) {
		__u32 n = len - pay < SEG_PAYLOAD ? len - pay : SEG_PAYLOAD;
		int err;

		memcpy(seg, f, hl);
		memcpy(seg + hl, f + pay, n);
		th = (struct tcphdr *)(seg + l4);
		th->seq = htonl(seq + (pay - hl));
		if (pay + n < len)
			th->fin = th->psh = 0;
		set_ip_len(seg, l3, hl + n);
		err = run_one(r, seg, hl + n, cut);
		if (err)
			return err;
	}
	return 0;
}

/* The frame of a captured packet: its link header replaced by an
 * Ethernet header (the program's view at TC on an Ethernet device).
 * Returns the frame's length, 0 to skip the packet. */
static __u32 to_ether(int dlt, const __u8 *p, __u32 len, __u8 *out,
		      __u32 outlen)
{
	__u32 skip;
	__u16 proto;

	switch (dlt) {
	case DLT_EN10MB:
		skip = 0;
		proto = 0;
		break;
	case DLT_LINUX_SLL:	/* 16 bytes, protocol at 14 */
		if (len < 16)
			return 0;
		skip = 16;
		proto = p[14] << 8 | p[15];
		break;
	case DLT_LINUX_SLL2:	/* 20 bytes, protocol at 0 */
		if (len < 20)
			return 0;
		skip = 20;
		proto = p[0] << 8 | p[1];
		break;
	case DLT_NULL:
	case DLT_LOOP:		/* 4 bytes of address family */
		if (len < 5)
			return 0;
		skip = 4;
		proto = 0;
		break;
	default:		/* raw IP */
		skip = 0;
		proto = 0;
		break;
	}
	if (dlt != DLT_EN10MB && !proto) {
		if (len <= skip)
			return 0;
		proto = p[skip] >> 4 == 6 ? ETH_P_IPV6 : ETH_P_IP;
	}
	if (dlt == DLT_EN10MB) {
		if (len > outlen)
			return 0;
		memcpy(out, p, len);
		return len;
	}
	if (len - skip + ETH_HLEN > outlen)
		return 0;
	memset(out, 0, 12);
	out[12] = proto >> 8;
	out[13] = proto & 0xff;
	memcpy(out + ETH_HLEN, p + skip, len - skip);
	return len - skip + ETH_HLEN;
}

static bool dlt_known(int dlt)
{
	return dlt == DLT_EN10MB || dlt == DLT_LINUX_SLL ||
	       dlt == DLT_LINUX_SLL2 || dlt == DLT_NULL || dlt == DLT_LOOP ||
	       dlt == DLT_RAW || dlt == DLT_IPV4 || dlt == DLT_IPV6;
}

static int replay_file(struct replay *r, const char *path)
{
	static __u8 frame[65536 + ETH_HLEN];
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const __u8 *data;
	pcap_t *p;
	int dlt, rc, ret = 0;

	p = pcap_open_offline(path, err);
	if (!p)
		return fail("%s: %s", path, err);
	dlt = pcap_datalink(p);
	if (!dlt_known(dlt)) {
		pcap_close(p);
		return fail("%s: link type %s is not supported (Ethernet, "
			    "Linux cooked, raw IP and BSD loopback are)", path,
			    pcap_datalink_val_to_name(dlt) ?: "unknown");
	}
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		__u32 n = to_ether(dlt, data, h->caplen, frame, sizeof(frame));
		bool cut = h->caplen < h->len;

		r->cut += cut;
		if (n && run_frame(r, frame, n, cut)) {
			ret = fail("%s: out of memory", path);
			break;
		}
	}
	if (rc == PCAP_ERROR)
		ret = fail("%s: %s", path, pcap_geterr(p));
	pcap_close(p);
	return ret;
}

/* --- output -------------------------------------------------------------- */

static const char *const phase_names[] = {
	[STG_PLAIN] = "plaintext",
	[STG_STARTTLS_SENT] = "starttls_sent",
	[STG_TLS_GO] = "starttls_accepted",
	[STG_TLS_HELLO] = "tls_hello",
	[STG_PICKUP_TLS] = "pickup",
	[STG_TLS] = "tls",
	[STG_EXEMPT] = "exempt",
	[STG_BLOCKED] = "reset",
	[STG_MONITORED] = "monitored",
};

#define NAME(tab, i) ((i) < sizeof(tab) / sizeof(*(tab)) && (tab)[i] ? (tab)[i] : "unknown")

/* The decision on @c: "tls", "reset: REASON", "exempt"... */
static void decision(const struct rconn *c, char *buf, size_t len)
{
	switch (c->ev) {
	case STG_EV_RESET:
	case STG_EV_DENIED:
		snprintf(buf, len, "reset: %s", NAME(reason_names, c->reason));
		return;
	case STG_EV_MONITOR:
		snprintf(buf, len, "monitor: %s", NAME(reason_names, c->reason));
		return;
	case STG_EV_EXEMPT:
		snprintf(buf, len, "exempt");
		return;
	case STG_EV_TLS:
		snprintf(buf, len, "tls");
		return;
	}
	if (!c->tracked)
		snprintf(buf, len, "not judged");
	else if (c->phase == STG_EXEMPT)
		snprintf(buf, len, "passed");
	else if (c->phase == STG_PLAIN && c->closed)
		snprintf(buf, len, "plaintext-quit");
	else
		snprintf(buf, len, "%s: %s", c->closed ? "closed" : "open",
			 NAME(phase_names, c->phase));
}

static void addr_str(const __u8 a[16], char *buf, size_t len)
{
	static const __u8 v4[12] = { [10] = 0xff, [11] = 0xff };

	if (!memcmp(a, v4, 12))
		inet_ntop(AF_INET, a + 12, buf, len);
	else
		inet_ntop(AF_INET6, a, buf, len);
}

static void print_conns(bool json)
{
	char cli[INET6_ADDRSTRLEN], srv[INET6_ADDRSTRLEN], what[64];

	for (size_t n = 0; n < tab.n; n++) {
		const struct rconn *c = &tab.c[tab.order[n]];
		const char *state = c->tracked ? NAME(phase_names, c->phase)
					       : "none";

		addr_str(c->key.cli_addr, cli, sizeof(cli));
		addr_str(c->key.srv_addr, srv, sizeof(srv));
		decision(c, what, sizeof(what));
		if (json)
			printf("%s{\"client\":\"%s\",\"client_port\":%u,"
			       "\"server\":\"%s\",\"server_port\":%u,"
			       "\"packets\":%llu,\"state\":\"%s\",\"closed\":%s,"
			       "\"decision\":\"%s\"%s}",
			       n ? "," : "", cli, c->key.cli_port, srv,
			       c->key.srv_port, (unsigned long long)c->packets,
			       state, c->closed ? "true" : "false", what,
			       c->cut ? ",\"cut_short\":true" : "");
		else
			printf("%s%s%s:%u -> %s%s%s:%u  %llu packets  state %s%s  "
			       "%s%s\n",
			       strchr(cli, ':') ? "[" : "", cli,
			       strchr(cli, ':') ? "]" : "", c->key.cli_port,
			       strchr(srv, ':') ? "[" : "", srv,
			       strchr(srv, ':') ? "]" : "", c->key.srv_port,
			       (unsigned long long)c->packets, state,
			       c->closed ? " (closed)" : "", what,
			       c->cut ? "  (packets cut short by the capture)"
				      : "");
	}
}

/* --- the command --------------------------------------------------------- */

static const char replay_usage[] =
	"Usage: starttls-guard replay [options] FILE...\n"
	"What would the guard have done? Runs every packet of the captures\n"
	"(pcap or pcapng, in the order given, as one stream) through the real\n"
	"program (BPF_PROG_TEST_RUN) on maps of its own: nothing is pinned or\n"
	"attached, a running guard is not touched. Prints one line per\n"
	"connection on a guarded port: client -> server, packets, the state\n"
	"it was left in, and the decision: tls, reset: REASON, exempt,\n"
	"monitor: REASON (would be reset), plaintext-quit (closed before TLS\n"
	"without a violation), open: STATE (the capture ends first),\n"
	"closed: STATE, passed, not judged; then the counters.\n"
	"The capture is taken as seen on the guarded host: packets to a\n"
	"guarded port go through the ingress program (the egress one with\n"
	"--direction outbound), the others through the egress one.\n"
	"\n"
	"  --json               one JSON object: connections and counters\n"
	"  --config FILE        the options and hosts of a daemon's file\n"
	"  --exempt CIDR[,..]   exempt hosts (as 'allow add')\n"
	"  --deny CIDR[,..]     denied hosts (as 'allow add --deny')\n"
	"  --auth-only-hosts CIDR[,..]\n"
	"                       hosts under auth-only (as 'allow add --auth-only')\n"
	"  --port, --policy, --upgrade-verb, --one-way, --two-way,\n"
	"  --implicit-tls-port, --direction, --midstream, --monitor, --enforce,\n"
	"  --default, --max-connections, --scanner\n"
	"                       as for attach (see 'attach --help'); the\n"
	"                       defaults are attach's\n"
	"  -v, --verbose        libbpf's debug output\n"
	"  -h, --help           this help\n"
	"Needs root (it loads the program). Exit status: 0 replayed, 1 a file\n"
	"could not be read or the program not loaded, 2 bad command line.\n";

static int add_hosts(struct stg_conf *c, const char *list, __u32 action,
		     char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL, *item;
	int rc = 0;

	if (!copy)
		return snprintf(err, errlen, "out of memory"), -1;
	for (item = strtok_r(copy, ",", &save); item && !rc;
	     item = strtok_r(NULL, ",", &save)) {
		struct stg_conf_host *h = realloc(c->hosts, (c->nhosts + 1) *
							    sizeof(*h));
		const char *why;

		if (!h) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		c->hosts = h;
		why = stg_cidr_parse(item, &h[c->nhosts].key);
		if (why) {
			snprintf(err, errlen, "bad CIDR '%s': %s", item, why);
			rc = -1;
		}
		h[c->nhosts++].action = action;
	}
	free(copy);
	return rc;
}

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		STG_CONFIG_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "exempt", required_argument, NULL, 'x' },
		{ "deny", required_argument, NULL, 'y' },
		{ "auth-only-hosts", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static struct stg_conf conf;
	struct stg_conf cli = { 0 };
	struct replay r = { 0 };
	const char *config = NULL;
	__u64 sum[STG_C_MAX];
	char err[512];
	bool json = false;
	int opt, rc = 1, ncpu;
	__u32 zero = 0;

	stg_opts_init(&cli.opts);
	stg_opts_init(&conf.opts);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":p:med:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = true;
			break;
		case 'h':
			fputs(replay_usage, stdout);
			return 0;
		case 'j':
			json = true;
			break;
		case 'c':
			config = optarg;
			break;
		case ':':
			usage_error("replay", "%s needs a value", argv[optind - 1]);
			break;
		case '?':
			usage_error("replay", "unknown option '%s'",
				    argv[optind - 1]);
			break;
		case 'x':
		case 'y':
		case 'a':
			if (add_hosts(&cli, optarg,
				      opt == 'x' ? STG_ACT_EXEMPT :
				      opt == 'y' ? STG_ACT_DENY :
						   STG_ACT_AUTH_ONLY,
				      err, sizeof(err)))
				usage_error("replay", "%s", err);
			break;
		default:
			if (stg_opt_set(&cli.opts, opt, optarg, err, sizeof(err)))
				usage_error("replay", "%s", err);
		}
	}
	if (optind >= argc)
		usage_error("replay", "no capture file named");
	/* The configuration: attach's defaults, the file's, the command
	 * line's; the hosts of both. */
	stg_config_defaults(&r.cfg);
	if (config) {
		if (stg_conf_load(config, &conf, err, sizeof(err)))
			return fail("%s", err);
		if (stg_make_config(&conf.opts, &r.cfg, err, sizeof(err))) {
			stg_conf_free(&conf);
			return fail("%s: %s", config, err);
		}
	}
	if (stg_make_config(&cli.opts, &r.cfg, err, sizeof(err)))
		usage_error("replay", "%s", err);
	if (check_env(false))
		goto out;
	/* A reset clones its RSTs out of the packet's device: in a network
	 * namespace of our own they go nowhere. */
	if (unshare(CLONE_NEWNET)) {
		fail("couldn't make a network namespace to replay in: %s",
		     strerror(errno));
		goto out;
	}

	r.skel = starttls_guard_bpf__open();
	if (!r.skel) {
		fail("couldn't open the BPF object: %s", strerror(errno));
		goto out;
	}
	{
		__u32 max = cli.opts.max_conns ?: conf.opts.max_conns;

		if (max)
			bpf_map__set_max_entries(r.skel->maps.conns, max);
	}
	r.cfg.scanner = stg_load(r.skel, cli.opts.scanner != STG_SCAN_AUTO ?
					 cli.opts.scanner : conf.opts.scanner);
	if ((int)r.cfg.scanner < 0)
		goto out;
	if (bpf_map_update_elem(bpf_map__fd(r.skel->maps.settings), &zero,
				&r.cfg, BPF_ANY) ||
	    stg_fill_jmp(r.skel)) {
		fail("couldn't configure the program: %s", strerror(errno));
		goto out;
	}
	for (int pass = 0; pass < 2; pass++) {
		const struct stg_conf *c = pass ? &cli : &conf;

		for (int i = 0; i < c->nhosts; i++) {
			struct stg_host h = { .action = c->hosts[i].action,
					      .prefixlen = c->hosts[i].key.prefixlen };

			if (bpf_map_update_elem(bpf_map__fd(r.skel->maps.hosts),
						&c->hosts[i].key, &h, BPF_ANY)) {
				fail("couldn't fill the host map: %s",
				     strerror(errno));
				goto out;
			}
		}
	}
	ncpu = libbpf_num_possible_cpus();
	r.evzero = calloc(ncpu > 0 ? ncpu : 1,
			  bpf_map__value_size(r.skel->maps.evlimit));
	r.rb = ring_buffer__new(bpf_map__fd(r.skel->maps.events), on_event,
				NULL, NULL);
	if (!r.evzero || !r.rb) {
		fail("couldn't read the program's events: %s", strerror(errno));
		goto out;
	}

	for (int i = optind; i < argc; i++)
		if (replay_file(&r, argv[i]))
			goto out;

	if (stg_sum_counters(bpf_map__fd(r.skel->maps.counters), sum)) {
		fail("couldn't read the counters: %s", strerror(errno));
		goto out;
	}
	{
		__u64 tracked = 0;
		struct stg_conn_key k, *prev = NULL;

		while (!bpf_map_get_next_key(bpf_map__fd(r.skel->maps.conns),
					     prev, &k)) {
			tracked++;
			prev = &k;
		}
		if (json) {
			printf("{\"packets\":%llu,\"cut_short\":%llu,"
			       "\"not_run\":%llu,\"connections\":[",
			       (unsigned long long)r.packets,
			       (unsigned long long)r.cut,
			       (unsigned long long)r.failed);
			print_conns(true);
			printf("],\"counters\":");
			stg_print_counters(sum, tracked, true);
			printf("}\n");
		} else {
			print_conns(false);
			printf("\n%llu packets replayed\n",
			       (unsigned long long)r.packets);
			stg_print_counters(sum, tracked, false);
		}
	}
	if (r.cut)
		say("warning: %llu packets were cut short by the capture's "
		    "snap length: decisions on their connections are not "
		    "what the guard would have made (capture with -s 0)",
		    (unsigned long long)r.cut);
	if (r.failed)
		say("warning: %llu packets could not be run (bigger than a "
		    "test run takes, and not a guarded connection's)",
		    (unsigned long long)r.failed);
	rc = 0;
out:
	ring_buffer__free(r.rb);
	free(r.evzero);
	starttls_guard_bpf__destroy(r.skel);
	stg_conf_free(&conf);
	stg_conf_free(&cli);
	free(tab.c);
	free(tab.order);
	return rc;
}
