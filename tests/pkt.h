/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Crafting Ethernet/IPv4|IPv6/TCP packets for BPF_PROG_TEST_RUN, and
 * checking the checksums of what comes out. */
#ifndef STG_TEST_PKT_H
#define STG_TEST_PKT_H

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <stdint.h>
#include <string.h>

#define PKT_MAX 9000

/* One side of a test connection. */
struct tconn {
	int v6;
	int vlan;		/* 802.1Q tag in the packet */
	int ip_opts;		/* IPv4 options (4 bytes of NOPs) */
	uint8_t cli[16], srv[16];
	uint16_t cport, sport;
	uint32_t cseq, sseq;	/* next sequence number of each side */
};

struct pkt {
	uint8_t b[PKT_MAX];
	uint32_t len;
	uint32_t l3, l4;	/* offsets of the IP and TCP headers */
};

static inline uint32_t csum_add(uint32_t s, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (b[i] << 8) | b[i + 1];
	if (n & 1)
		s += b[n - 1] << 8;
	return s;
}

static inline uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* Build a packet of @c from the client (@c2s) or the server. @topts: TCP
 * option bytes (a multiple of 4). */
static inline void pkt_build(struct pkt *p, const struct tconn *c, int c2s,
			     uint8_t flags, uint32_t seq, uint32_t ack,
			     const void *pay, uint32_t plen, const void *topts,
			     uint32_t olen)
{
	struct ethhdr *eth = (void *)p->b;
	uint32_t off = sizeof(*eth), tlen = sizeof(struct tcphdr) + olen;
	const uint8_t *src = c2s ? c->cli : c->srv, *dst = c2s ? c->srv : c->cli;
	uint32_t sum = 0;
	struct tcphdr *th;

	memset(p->b, 0, sizeof(p->b));
	memcpy(eth->h_dest, c2s ? "\x02\0\0\0\0\x25" : "\x02\0\0\0\0\x10", 6);
	memcpy(eth->h_source, c2s ? "\x02\0\0\0\0\x10" : "\x02\0\0\0\0\x25", 6);
	if (c->vlan) {
		eth->h_proto = htons(ETH_P_8021Q);
		p->b[off] = 0;
		p->b[off + 1] = 100;
		*(uint16_t *)(p->b + off + 2) = htons(c->v6 ? ETH_P_IPV6 : ETH_P_IP);
		off += 4;
	} else {
		eth->h_proto = htons(c->v6 ? ETH_P_IPV6 : ETH_P_IP);
	}
	p->l3 = off;
	if (c->v6) {
		struct ipv6hdr *ip6 = (void *)(p->b + off);

		ip6->version = 6;
		ip6->payload_len = htons(tlen + plen);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, src, 16);
		memcpy(&ip6->daddr, dst, 16);
		off += sizeof(*ip6);
		sum = csum_add(sum, src, 16);
		sum = csum_add(sum, dst, 16);
	} else {
		struct iphdr *ip = (void *)(p->b + off);
		uint32_t ihl = c->ip_opts ? 6 : 5;

		ip->version = 4;
		ip->ihl = ihl;
		ip->tot_len = htons(ihl * 4 + tlen + plen);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		memcpy(&ip->saddr, src + 12, 4);
		memcpy(&ip->daddr, dst + 12, 4);
		if (c->ip_opts)
			memset(p->b + off + 20, 1, 4); /* NOPs */
		ip->check = htons(csum_fold(csum_add(0, ip, ihl * 4)));
		off += ihl * 4;
		sum = csum_add(sum, src + 12, 4);
		sum = csum_add(sum, dst + 12, 4);
	}
	p->l4 = off;
	th = (void *)(p->b + off);
	th->source = htons(c2s ? c->cport : c->sport);
	th->dest = htons(c2s ? c->sport : c->cport);
	th->seq = htonl(seq);
	th->ack_seq = htonl(ack);
	th->doff = tlen / 4;
	p->b[off + 13] = flags;
	th->window = htons(64240);
	if (olen)
		memcpy(p->b + off + sizeof(*th), topts, olen);
	if (plen)
		memcpy(p->b + off + tlen, pay, plen);
	sum += IPPROTO_TCP + tlen + plen;
	sum = csum_add(sum, p->b + off, tlen + plen);
	th->check = htons(csum_fold(sum));
	p->len = off + tlen + plen;
}

/* Recompute the IPv4 header checksum after editing the header. */
static inline void pkt_fix_ip4(struct pkt *p)
{
	struct iphdr *ip = (void *)(p->b + p->l3);

	ip->check = 0;
	ip->check = htons(csum_fold(csum_add(0, ip, ip->ihl * 4)));
}

/* 1 when the TCP (and IPv4 header) checksums of a packet are right. */
static inline int pkt_csum_ok(const uint8_t *b, uint32_t len, uint32_t l3,
			      int v6)
{
	uint32_t sum = 0, l4, tlen;

	if (v6) {
		l4 = l3 + 40;
		tlen = len - l4;
		sum = csum_add(sum, b + l3 + 8, 32);
	} else {
		uint32_t ihl = (b[l3] & 0xf) * 4;

		if (csum_fold(csum_add(0, b + l3, ihl)) != 0)
			return 0;
		l4 = l3 + ihl;
		tlen = len - l4;
		sum = csum_add(sum, b + l3 + 12, 8);
	}
	sum += IPPROTO_TCP + tlen;
	sum = csum_add(sum, b + l4, tlen);
	return csum_fold(sum) == 0;
}

#endif /* STG_TEST_PKT_H */
