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
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
/* libpcap's classic-BPF header clashes with the kernel's eBPF one */
#define PCAP_DONT_INCLUDE_PCAP_BPF_H
#include <pcap/dlt.h>
#include <pcap/pcap.h>

#include "cidr.h"
#include "guard.h"
#include "jmp.h"

/* What BPF_PROG_TEST_RUN takes for a TC program is at most a page less
 * the skb's head and tail room: 3712 bytes on x86-64. A bigger packet
 * (GRO and TSO make them, BIG TCP up to 256 KiB, a jumbo MTU) is cut
 * into segments of SEG_PAYLOAD bytes of payload, as the wire carried it. */
#define SEG_PAYLOAD 1448
#define FRAME_MAX 3712
#define CAPTURE_MAX 262144	/* libpcap's largest packet */
/* Frames start 2 bytes into 4-aligned buffers, so that the IP and TCP
 * headers after a 14-byte Ethernet header are aligned (as the kernel's
 * NET_IP_ALIGN does) */
#define IP_ALIGN 2

/* One connection seen in the captures (a tuple used again after a new
 * SYN is a connection of its own) */
struct rconn {
	struct stg_conn_key key;
	__u64 packets;
	__u32 syn_seq;		/* its SYN's, when the SYN was seen */
	bool syn;
	bool midstream;		/* begun before the capture */
	bool tracked;		/* the guard kept state for it */
	bool closed;		/* ... and removed it at the close */
	bool cut;		/* a packet of it was cut short by the snap length */
	__u8 phase;		/* the last state in the table */
	__u8 ev, reason;	/* the decision: its event, its reason */
	__u64 verb[2];		/* ... the command's verb */
	struct timeval when;	/* ... the time of the packet that made it */
};

static struct {
	struct rconn *c;	/* in order of first packet */
	size_t n, cap;
	__u32 *slot;		/* hash of keys: index + 1 of the latest, or 0 */
	size_t nslots;		/* a power of two */
} tab;

static __u32 key_hash(const struct stg_conn_key *k)
{
	const __u8 *b = (const void *)k;
	__u32 h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* The slot of key @k: its connection's, or the empty one to fill */
static __u32 *slot_of(const struct stg_conn_key *k)
{
	size_t i = key_hash(k) & (tab.nslots - 1);

	while (tab.slot[i] && memcmp(&tab.c[tab.slot[i] - 1].key, k, sizeof(*k)))
		i = (i + 1) & (tab.nslots - 1);
	return &tab.slot[i];
}

/* The latest connection on tuple @k, or NULL */
static struct rconn *conn_find(const struct stg_conn_key *k)
{
	__u32 *s = tab.nslots ? slot_of(k) : NULL;

	return s && *s ? &tab.c[*s - 1] : NULL;
}

/* A new connection on tuple @k (NULL: out of memory) */
static struct rconn *conn_new(const struct stg_conn_key *k)
{
	if (tab.n == tab.cap) {
		size_t cap = tab.cap ? tab.cap * 2 : 1024;
		struct rconn *c = realloc(tab.c, cap * sizeof(*c));

		if (!c)
			return NULL;
		tab.c = c;
		tab.cap = cap;
	}
	if ((tab.n + 1) * 2 > tab.nslots) {
		size_t old = tab.nslots;
		__u32 *was = tab.slot;

		tab.nslots = old ? old * 2 : 2048;
		tab.slot = calloc(tab.nslots, sizeof(*tab.slot));
		if (!tab.slot) {
			tab.slot = was;
			tab.nslots = old;
			return NULL;
		}
		/* the latest connection of each tuple, again */
		for (size_t i = 0; i < old; i++)
			if (was[i])
				*slot_of(&tab.c[was[i] - 1].key) = was[i];
		free(was);
	}
	memset(&tab.c[tab.n], 0, sizeof(tab.c[tab.n]));
	tab.c[tab.n].key = *k;
	*slot_of(k) = ++tab.n;
	return &tab.c[tab.n - 1];
}

/* The capture's time of the packet being run */
static struct timeval now;

/* The decision an event makes: a reset (or a denied host) stands over
 * anything else; otherwise the first. */
static int on_event(void *ctx, void *data, size_t len)
{
	const struct stg_event *e = data;
	struct rconn *c;

	(void)ctx;
	if (len < sizeof(*e) || !(c = conn_find(&e->key)))
		return 0;
	if (!c->ev || e->type == STG_EV_RESET || e->type == STG_EV_DENIED) {
		c->ev = e->type;
		c->reason = e->reason;
		memcpy(c->verb, e->verb, sizeof(c->verb));
		c->when = now;
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
		/* as the program walks them (bpf/parse.h): at most 6 */
		for (int i = 0; i < 6 && nh != IPPROTO_TCP; i++) {
			if (len < off + 8)
				return 0;
			if (nh == IPPROTO_FRAGMENT) {
				if ((f[off + 2] << 8 | f[off + 3]) & 0xfff8)
					return 0;
				nh = f[off];
				off += 8;
			} else if (nh == IPPROTO_AH) {
				nh = f[off];
				off += (f[off + 1] + 2) * 4;
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
	struct stg_conf local;	/* hosts: the guarded host's addresses */
	void *evzero;		/* a zero value of the evlimit map */
	__u64 packets, cut, failed;
	__u64 guessed;		/* packets whose direction was taken as inbound */
};

static bool is_local(const struct replay *r, const __u8 a[16])
{
	for (int i = 0; i < r->local.nhosts; i++) {
		const struct stg_host_key *k = &r->local.hosts[i].key;
		__u32 bits = k->prefixlen;

		if (!memcmp(a, k->addr, bits / 8) &&
		    (bits % 8 == 0 ||
		     !((a[bits / 8] ^ k->addr[bits / 8]) &
		       (0xff00 >> (bits % 8)))))
			return true;
	}
	return false;
}

/* Run frame @f through the program of the hook it passed on the guarded
 * host. @out: 1 it left the host, 0 it arrived, -1 unknown (then the
 * addresses of --local tell, else every connection is taken as inbound:
 * its client's packets arrive). */
static int run_one(struct replay *r, const __u8 *f, __u32 len, bool cut,
		   int out)
{
	struct stg_conn_key k;
	struct stg_conn st;
	struct rconn *c = NULL;
	bool c2s = true;
	__u32 l3 = 0, l4, zero = 0;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = len,
		    .repeat = 1);
	int prog;

	l4 = tcp_of(f, len, &r->cfg, &k, &c2s, &l3);
	if (l4) {
		const struct tcphdr *th = (const void *)(f + l4);
		bool syn = c2s && th->syn && !th->ack;

		c = conn_find(&k);
		/* a new connection: on a new tuple, or a SYN of another
		 * sequence number than the tuple's last */
		if (!c || (syn && (!c->syn || c->syn_seq != ntohl(th->seq)))) {
			c = conn_new(&k);
			if (!c)
				return -ENOMEM;
			c->syn = syn;
			c->syn_seq = ntohl(th->seq);
			c->midstream = !syn;
		}
		c->packets++;
		c->cut |= cut;
		if (out < 0 && r->local.nhosts)
			out = is_local(r, c2s ? k.cli_addr : k.srv_addr);
	}
	if (out < 0) {
		out = c2s == !!(r->cfg.flags & STG_CFG_NO_INBOUND);
		r->guessed += !!c;
	}
	prog = bpf_program__fd(out ? r->skel->progs.stg_egress
				   : r->skel->progs.stg_ingress);
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
static int run_frame(struct replay *r, __u8 *f, __u32 len, bool cut,
		     int out)
{
	static __u8 seg_buf[IP_ALIGN + FRAME_MAX] __attribute__((aligned(4)));
	__u8 *seg = seg_buf + IP_ALIGN;
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
		return run_one(r, f, len, cut, out);
	if (!l4 || len < l4 + ((const struct tcphdr *)(f + l4))->doff * 4u) {
		r->failed++; /* too big, not a guarded connection's */
		return 0;
	}
	hl = l4 + ((const struct tcphdr *)(f + l4))->doff * 4;
	if (hl + SEG_PAYLOAD > FRAME_MAX) {
		r->failed++; /* headers too long to leave room for payload */
		return 0;
	}
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
		err = run_one(r, seg, hl + n, cut, out);
		if (err)
			return err;
	}
	return 0;
}

/* The frame of a captured packet: its link header replaced by an
 * Ethernet header (the program's view at TC on an Ethernet device).
 * Returns the frame's length, 0 to skip the packet; @dir: 1 the packet
 * left the host, 0 it arrived (Linux cooked captures say), -1 unknown. */
#define PACKET_OUTGOING 4
static __u32 to_ether(int dlt, const __u8 *p, __u32 len, __u8 *out,
		      __u32 outlen, int *dir)
{
	__u32 skip;
	__u16 proto;

	*dir = -1;
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
		*dir = (p[0] << 8 | p[1]) == PACKET_OUTGOING;
		break;
	case DLT_LINUX_SLL2:	/* 20 bytes, protocol at 0 */
		if (len < 20)
			return 0;
		skip = 20;
		proto = p[0] << 8 | p[1];
		*dir = p[10] == PACKET_OUTGOING;
		break;
	case DLT_NULL:
	case DLT_LOOP:		/* 4 bytes of address family */
		if (len < 5)
			return 0;
		skip = 4;
		proto = 0;
		break;
	default:		/* raw IP (DLT_RAW, IPV4, IPV6; 12 and 14) */
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
	       dlt == DLT_RAW || dlt == 12 || dlt == 14 || dlt == DLT_IPV4 ||
	       dlt == DLT_IPV6;
}

/* Open capture @path: its handle, or NULL (printed) */
static pcap_t *open_capture(const char *path)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, err);
	int dlt;

	if (!p) {
		/* libpcap names the file in some of its messages */
		if (strstr(err, path))
			fail("%s", err);
		else
			fail("%s: %s", path, err);
		return NULL;
	}
	dlt = pcap_datalink(p);
	if (!dlt_known(dlt)) {
		fail("%s: link type %s is not supported (Ethernet, Linux "
		     "cooked, raw IP and BSD loopback are)", path,
		     pcap_datalink_val_to_name(dlt) ?: "unknown");
		pcap_close(p);
		return NULL;
	}
	return p;
}

/* Run the packets of capture @p (@path). A file that ends in the middle
 * of a packet (a capture still being written, or its writer killed) is
 * replayed up to there, with a warning. -1 when out of memory. */
static int replay_file(struct replay *r, pcap_t *p, const char *path)
{
	static __u8 frame_buf[IP_ALIGN + CAPTURE_MAX + ETH_HLEN]
		__attribute__((aligned(4)));
	__u8 *frame = frame_buf + IP_ALIGN;
	int dlt = pcap_datalink(p), rc;
	struct pcap_pkthdr *h;
	const __u8 *data;

	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		bool cut = h->caplen < h->len;
		int dir;
		__u32 n = to_ether(dlt, data, h->caplen, frame,
				   CAPTURE_MAX + ETH_HLEN, &dir);

		r->cut += cut;
		now = h->ts;
		if (!n)
			r->failed++; /* no IP packet in it */
		else if (run_frame(r, frame, n, cut, dir))
			return fail("%s: out of memory", path), -1;
	}
	if (rc == PCAP_ERROR)
		say("warning: %s: %s: replayed up to there", path,
		    pcap_geterr(p));
	return 0;
}

/* --- output -------------------------------------------------------------- */


/* The decision on @c: "tls", "reset: REASON", "exempt"... */
static void decision(const struct rconn *c, char *buf, size_t len)
{
	switch (c->ev) {
	case STG_EV_RESET:
	case STG_EV_DENIED:
		snprintf(buf, len, "reset: %s", STG_NAME(reason_names, c->reason));
		return;
	case STG_EV_MONITOR:
		snprintf(buf, len, "monitor: %s", STG_NAME(reason_names, c->reason));
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
			 stg_phase_name(c->phase));
}

/* An address, in brackets if it is IPv6 and @brackets */
static void addr_str(const __u8 a[16], char *buf, size_t len, bool brackets)
{
	char s[INET6_ADDRSTRLEN];

	stg_addr_format(a, s, sizeof(s));
	snprintf(buf, len, brackets && strchr(s, ':') ? "[%s]" : "%s", s);
}

static void print_conns(bool json)
{
	char cli[INET6_ADDRSTRLEN + 2], srv[INET6_ADDRSTRLEN + 2], what[64];
	char verb[SMTP_VERB_MAX + 1], when[40];

	for (size_t n = 0; n < tab.n; n++) {
		const struct rconn *c = &tab.c[n];
		const char *state = c->tracked ? stg_phase_name(c->phase)
					       : "none";
		struct tm tm;
		time_t sec = c->when.tv_sec;

		addr_str(c->key.cli_addr, cli, sizeof(cli), !json);
		addr_str(c->key.srv_addr, srv, sizeof(srv), !json);
		decision(c, what, sizeof(what));
		stg_verb_format(c->verb, verb);
		*when = '\0';
		if (c->ev) {
			gmtime_r(&sec, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
			snprintf(when + strlen(when), sizeof(when) - strlen(when),
				 ".%06ldZ", (long)c->when.tv_usec);
		}
		if (json) {
			printf("%s{\"client\":\"%s\",\"client_port\":%u,"
			       "\"server\":\"%s\",\"server_port\":%u,"
			       "\"packets\":%llu,\"state\":\"%s\",\"closed\":%s,"
			       "\"decision\":\"%s\"",
			       n ? "," : "", cli, c->key.cli_port, srv,
			       c->key.srv_port, (unsigned long long)c->packets,
			       state, c->closed ? "true" : "false", what);
			if (*verb)
				printf(",\"verb\":\"%s\"", verb);
			if (*when)
				printf(",\"time\":\"%s\"", when);
			printf(",\"began_before_capture\":%s,\"cut_short\":%s}",
			       c->midstream ? "true" : "false",
			       c->cut ? "true" : "false");
			continue;
		}
		printf("%s:%u -> %s:%u  %llu packet%s  state %s%s  %s", cli,
		       c->key.cli_port, srv, c->key.srv_port,
		       (unsigned long long)c->packets, c->packets == 1 ? "" : "s",
		       state, c->closed ? " (closed)" : "", what);
		if (*verb)
			printf(" (%s)", verb);
		if (*when)
			printf(" at %s", when);
		if (c->midstream)
			printf("  (began before the capture)");
		if (c->cut)
			printf("  (packets cut short by the capture)");
		printf("\n");
	}
}

/* --- the command --------------------------------------------------------- */

static const char replay_usage[] =
	"Usage: starttls-guard replay [options] FILE...\n"
	"What would the guard have done? Runs every packet of the captures\n"
	"(pcap or pcapng; Ethernet, Linux cooked, raw IP or BSD loopback; in\n"
	"the order given, as one stream) through the real program\n"
	"(BPF_PROG_TEST_RUN) on maps of its own: nothing is pinned or\n"
	"attached, a running guard is not touched. Prints one line per\n"
	"connection on a guarded port: client -> server, packets, the state\n"
	"it was left in (none: the guard kept no state), and the decision:\n"
	"tls, reset: REASON (with the command's verb and the capture's time),\n"
	"exempt, monitor: REASON (would be reset), plaintext-quit (closed\n"
	"before TLS without a violation), open: STATE (the capture ends\n"
	"first), closed: STATE, passed, not judged (not in the direction\n"
	"judged); then the counters. A connection begun before the capture is\n"
	"judged as the guard judges one it picks up mid-stream, and marked.\n"
	"Which hook a packet passed on the guarded host: a Linux cooked\n"
	"capture (tcpdump -i any) says; else --local names the host's\n"
	"addresses (packets from them leave it); else every connection is\n"
	"taken as inbound (its client's packets arrive).\n"
	"\n"
	"  --json               one JSON object: connections and counters\n"
	"  --local CIDR[,..]    the addresses of the host the capture is of\n"
	"  --config FILE        the options and hosts of a daemon's file (the\n"
	"                       command line's options go over them)\n"
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
	"could not be read or the program not loaded, 2 bad command line or\n"
	"configuration file.\n";

/* Add the hosts of comma-separated @list to @c with @action: 0, or -1
 * with what is wrong in @err. */
static int add_hosts(struct stg_conf *c, const char *list, __u32 action,
		     char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL, *item;
	int rc = 0;

	if (!copy)
		return snprintf(err, errlen, "out of memory"), -1;
	for (item = strtok_r(copy, ",", &save); item && !rc;
	     item = strtok_r(NULL, ",", &save))
		rc = stg_conf_add_host(c, item, action, err, errlen);
	free(copy);
	return rc;
}

/* Bring the loopback device of our network namespace up: the RSTs a
 * reset sends out of it (as out of the packet's device) are then sent,
 * as they would be, and go nowhere. */
static void loopback_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		STG_CONFIG_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "local", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "exempt", required_argument, NULL, 'x' },
		{ "deny", required_argument, NULL, 'y' },
		{ "auth-only-hosts", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	/* the file's hosts and the command line's (which go over them) */
	static struct stg_conf conf, cli_hosts;
	struct stg_opts cli;
	struct replay r = { 0 };
	const char *config = NULL;
	pcap_t **caps = NULL;
	__u64 sum[STG_C_MAX];
	char err[512];
	bool json = false;
	int opt, rc = 1, ncpu, nfiles;
	__u32 zero = 0;

	stg_opts_init(&cli);
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
		case 'l':
			if (add_hosts(&r.local, optarg, 0, err, sizeof(err)))
				usage_error("replay", "--local: %s", err);
			break;
		case 'x':
		case 'y':
		case 'a':
			if (add_hosts(&cli_hosts, optarg,
				      opt == 'x'   ? STG_ACT_EXEMPT
				      : opt == 'y' ? STG_ACT_DENY
						   : STG_ACT_AUTH_ONLY,
				      err, sizeof(err)))
				usage_error("replay", "%s", err);
			break;
		default:
			if (stg_opt_set(&cli, opt, optarg, err, sizeof(err)))
				usage_error("replay", "%s", err);
		}
	}
	nfiles = argc - optind;
	if (nfiles <= 0)
		usage_error("replay", "no capture file named");

	/* The configuration: attach's defaults, the file's, the command
	 * line's; the hosts of both. */
	stg_config_defaults(&r.cfg);
	if (config) {
		if (stg_conf_load(config, &conf, err, sizeof(err)))
			return fail("%s", err), 2;
		if (stg_make_config(&conf.opts, &r.cfg, err, sizeof(err))) {
			stg_conf_free(&conf);
			return fail("%s: %s", config, err), 2;
		}
	}
	if (stg_make_config(&cli, &r.cfg, err, sizeof(err)))
		usage_error("replay", "%s", err);

	/* The files first: one that cannot be read is said at once */
	caps = calloc(nfiles, sizeof(*caps));
	for (int i = 0; caps && i < nfiles; i++)
		if (!(caps[i] = open_capture(argv[optind + i])))
			goto out;
	if (check_env(false))
		goto out;
	/* A reset clones its RSTs out of the packet's device: in a network
	 * namespace of our own they go nowhere. */
	if (unshare(CLONE_NEWNET)) {
		fail("couldn't make a network namespace to replay in: %s",
		     strerror(errno));
		goto out;
	}
	loopback_up();

	r.skel = starttls_guard_bpf__open();
	if (!r.skel) {
		fail("couldn't open the BPF object: %s", strerror(errno));
		goto out;
	}
	if (cli.max_conns || conf.opts.max_conns)
		bpf_map__set_max_entries(r.skel->maps.conns,
					 cli.max_conns ?: conf.opts.max_conns);
	r.cfg.scanner = stg_load(r.skel, cli.scanner != STG_SCAN_AUTO ?
					 cli.scanner : conf.opts.scanner);
	if ((int)r.cfg.scanner < 0)
		goto out;
	if (bpf_map_update_elem(bpf_map__fd(r.skel->maps.settings), &zero,
				&r.cfg, BPF_ANY) ||
	    stg_fill_jmp(r.skel)) {
		fail("couldn't configure the program: %s", strerror(errno));
		goto out;
	}
	if (stg_conf_put_hosts(&conf, bpf_map__fd(r.skel->maps.hosts)) ||
	    stg_conf_put_hosts(&cli_hosts, bpf_map__fd(r.skel->maps.hosts))) {
		fail("couldn't fill the host map: %s", strerror(errno));
		goto out;
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

	for (int i = 0; i < nfiles; i++)
		if (replay_file(&r, caps[i], argv[optind + i]))
			goto out;

	if (stg_sum_counters(bpf_map__fd(r.skel->maps.counters), sum)) {
		fail("couldn't read the counters: %s", strerror(errno));
		goto out;
	}
	{
		__u64 tracked = stg_map_count(bpf_map__fd(r.skel->maps.conns));
		__u64 midstream = 0;

		for (size_t i = 0; i < tab.n; i++)
			midstream += tab.c[i].midstream;
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
			printf("\n%llu packet%s replayed\n",
			       (unsigned long long)r.packets,
			       r.packets == 1 ? "" : "s");
			stg_print_counters(sum, tracked, false);
		}
		if (r.guessed && (r.cfg.flags & (STG_CFG_NO_INBOUND |
						  STG_CFG_NO_OUTBOUND)))
			say("note: --direction: which connections are inbound "
			    "is not known without --local (or a capture with "
			    "-i any): every one was taken as %s",
			    r.cfg.flags & STG_CFG_NO_INBOUND ? "outbound"
							     : "inbound");
		if (!tab.n)
			say("note: no packet of the captures is on a guarded "
			    "port (--port: 25 unless it says otherwise)");
		if (midstream)
			say("note: %llu connection%s began before the capture: "
			    "judged as the guard judges a connection it picks "
			    "up mid-stream (--midstream), not as it would have "
			    "from their start", (unsigned long long)midstream,
			    midstream == 1 ? "" : "s");
	}
	if (r.cut)
		say("warning: %llu packets were cut short by the capture's "
		    "snap length: decisions on their connections are not "
		    "what the guard would have made (capture with -s 0)",
		    (unsigned long long)r.cut);
	if (r.failed)
		say("warning: %llu packets were not run: no IP packet in the "
		    "frame, or bigger than a test run takes and not a guarded "
		    "connection's, or headers too long to cut it",
		    (unsigned long long)r.failed);
	rc = 0;
out:
	for (int i = 0; caps && i < nfiles; i++)
		if (caps[i])
			pcap_close(caps[i]);
	free(caps);
	ring_buffer__free(r.rb);
	free(r.evzero);
	starttls_guard_bpf__destroy(r.skel);
	stg_conf_free(&conf);
	stg_conf_free(&cli_hosts);
	stg_conf_free(&r.local);
	free(tab.c);
	free(tab.slot);
	return rc;
}
