/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing for the TC program: Ethernet (up to two VLAN tags), IPv4
 * (options, fragments) or IPv6 (a bounded walk over extension headers),
 * then TCP. Direct packet access: the caller pulls the headers into the
 * linear area and parses again when stg_parse() says STG_P_PULL.
 */
#ifndef STG_PARSE_H
#define STG_PARSE_H

#define STG_VLAN_MAX 2		/* 802.1ad + 802.1Q */
#define STG_IPV6_EXT_MAX 6	/* extension headers walked before TCP */
#define STG_PULL_LEN 512	/* bytes made linear when headers are not */

/* A parsed TCP packet on a guarded port. Offsets are from skb->data
 * (the Ethernet header at TC, on both hooks). */
struct stg_pkt {
	__u32 l3_off;		/* IP header */
	__u32 l4_off;		/* TCP header */
	__u32 pay_off;		/* payload (after TCP options) */
	__u32 pay_len;		/* from skb->len, never from IP lengths */
	__u32 seq;
	__u32 ack;
	__u16 sport;		/* host byte order */
	__u16 dport;
	__u8 flags;		/* TCP flags byte: STG_TCP_* */
	__u8 ipv6;
	__u8 frag;		/* first fragment of a fragmented datagram */
	__u8 c2s;		/* client to server: dport is the guarded one */
	struct stg_conn_key key;
};

#define STG_TCP_FIN 0x01
#define STG_TCP_SYN 0x02
#define STG_TCP_RST 0x04
#define STG_TCP_ACK 0x10

enum stg_parse_result {
	STG_P_PASS = 0,		/* not a TCP packet on a guarded port */
	STG_P_TCP,		/* parsed: a guarded connection's packet */
	STG_P_PULL,		/* headers beyond the linear area */
	STG_P_UNWALKABLE,	/* headers that cannot be walked: too many VLAN
				 * tags or IPv6 extension headers */
};

static __always_inline __u16 stg_csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

/* Is @port in the bitmap @bm (STG_PORT_WORDS words)? */
static __always_inline int stg_port_in(const __u64 *bm, __u16 port)
{
	return (bm[port >> 6] >> (port & 63)) & 1;
}

static __always_inline int stg_port_guarded(const struct stg_config *cfg,
					    __u16 port)
{
	return stg_port_in(cfg->ports, port);
}

/* IPv4 address -> IPv4-mapped IPv6 (::ffff:a.b.c.d), network order. */
static __always_inline void stg_map4(__u8 *dst, __be32 addr)
{
	__u32 *w = (__u32 *)dst;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0xffff);
	w[3] = addr;
}

static __always_inline int stg_ipv6_ext(__u8 nh)
{
	return nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING ||
	       nh == NEXTHDR_DEST || nh == NEXTHDR_FRAGMENT ||
	       nh == NEXTHDR_AUTH;
}

/* Walk IPv6 extension headers from *nh at *off. Returns STG_P_TCP with
 * *off at the TCP header, STG_P_PASS for other protocols and non-first
 * fragments, STG_P_PULL or STG_P_UNWALKABLE. */
static __always_inline int stg_ipv6_walk(void *data, void *end, __u32 *off,
					 __u8 *nh, __u8 *frag)
{
#pragma unroll
	for (int i = 0; i < STG_IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr *oh = data + *off;

		if (*nh == NEXTHDR_TCP)
			return STG_P_TCP;
		if (!stg_ipv6_ext(*nh))
			return STG_P_PASS;
		if ((void *)(oh + 1) > end)
			return STG_P_PULL;
		if (*nh == NEXTHDR_FRAGMENT) {
			struct frag_hdr *fh = (void *)oh;

			if ((void *)(fh + 1) > end)
				return STG_P_PULL;
			if (fh->frag_off & bpf_htons(0xfff8))
				return STG_P_PASS; /* no TCP header here */
			if (fh->frag_off & bpf_htons(1))
				*frag = 1;
			*off += sizeof(*fh);
		} else if (*nh == NEXTHDR_AUTH) {
			*off += (oh->hdrlen + 2) * 4;
		} else {
			*off += (oh->hdrlen + 1) * 8;
		}
		*nh = oh->nexthdr;
	}
	if (*nh == NEXTHDR_TCP)
		return STG_P_TCP;
	return stg_ipv6_ext(*nh) ? STG_P_UNWALKABLE : STG_P_PASS;
}

/*
 * The IP header of a guarded connection's packet, checked as the stack
 * will check it (what needs loops, the IPv4 checksum and options, is
 * checked by stg_check before payload is judged): a packet that the stack
 * drops must not be judged (a client would send other bytes at the same
 * sequence number next), so it is passed unjudged (STG_P_PASS); one whose
 * IPv4-mapped IPv6 addresses would share an IPv4 connection's key is
 * dropped (STG_P_UNWALKABLE). Sets *ip_end to where the datagram ends.
 */
static __always_inline int stg_ip_check(struct __sk_buff *skb,
					const struct stg_pkt *p, void *data,
					void *end, __u32 *ip_end)
{
	__u32 len;

	if (p->ipv6) {
		struct ipv6hdr *ip6 = data + p->l3_off;
		const __u32 *a, *b;

		if ((void *)(ip6 + 1) > end)
			return STG_P_PULL;
		a = (const __u32 *)&ip6->saddr;
		b = (const __u32 *)&ip6->daddr;
		if ((!a[0] && !a[1] && a[2] == bpf_htonl(0xffff)) ||
		    (!b[0] && !b[1] && b[2] == bpf_htonl(0xffff)))
			return STG_P_UNWALKABLE;
		len = bpf_ntohs(ip6->payload_len);
		if (!len && !skb->gso_size)
			return STG_P_PASS; /* no jumbo: trimmed to nothing */
		*ip_end = len ? p->l3_off + sizeof(*ip6) + len : skb->len;
	} else {
		struct iphdr *ip = data + p->l3_off;
		__u32 hl;

		if ((void *)(ip + 1) > end)
			return STG_P_PULL;
		if (ip->version != 4)
			return STG_P_PASS;
		hl = ip->ihl * 4;
		len = bpf_ntohs(ip->tot_len);
		if (!len && skb->gso_size)
			len = skb->len - p->l3_off; /* BIG TCP */
		if (len < hl + 20)
			return STG_P_PASS;
		*ip_end = p->l3_off + len;
	}
	if (*ip_end > skb->len)
		return STG_P_PASS; /* shorter than it says: dropped */
	return STG_P_TCP;
}

/*
 * Parse the packet. Returns enum stg_parse_result; on STG_P_TCP fills @p,
 * key included, with the client/server roles taken from which side uses a
 * guarded port (the destination port wins when both do). Reads through
 * direct packet access only: no helper is called, pointers stay valid.
 */
static __always_inline int stg_parse(struct __sk_buff *skb, struct stg_pkt *p,
				     const struct stg_config *cfg)
{
	void *data = stg_data(skb);
	void *end = stg_data_end(skb);
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u8 *saddr, *daddr;
	__u32 ip_end = 0;
	struct tcphdr *th;
	int r;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return STG_P_PULL;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < STG_VLAN_MAX; i++) {
		struct vlan_hdr *vh = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return STG_P_PULL;
		proto = vh->h_vlan_encapsulated_proto;
		off += sizeof(*vh);
	}
	/* Deeper stacks would hide the ports: the stack strips VID-0 tags
	 * after TC and would deliver what was never judged. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return STG_P_UNWALKABLE;

	p->l3_off = off;
	p->frag = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end)
			return STG_P_PULL;
		if (ip->ihl < 5 || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(IP_OFFSET)))
			return STG_P_PASS; /* non-first fragments carry no ports */
		p->frag = !!(ip->frag_off & bpf_htons(IP_MF));
		p->ipv6 = 0;
		off += ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		__u8 nh;

		if ((void *)(ip6 + 1) > end)
			return STG_P_PULL;
		nh = ip6->nexthdr;
		off += sizeof(*ip6);
		r = stg_ipv6_walk(data, end, &off, &nh, &p->frag);
		if (r != STG_P_TCP)
			return r;
		p->ipv6 = 1;
	} else {
		return STG_P_PASS;
	}

	off &= 0xffff; /* bounded for the verifier; headers end far below */
	th = data + off;
	if ((void *)(th + 1) > end)
		return STG_P_PULL;
	p->sport = bpf_ntohs(th->source);
	p->dport = bpf_ntohs(th->dest);
	if (stg_port_guarded(cfg, p->dport))
		p->c2s = 1;
	else if (stg_port_guarded(cfg, p->sport))
		p->c2s = 0;
	else
		return STG_P_PASS;

	/* Ours from here on. */
	if (th->doff < 5)
		return STG_P_PASS; /* malformed: the stack drops it */
	p->l4_off = off;
	p->pay_off = off + th->doff * 4;
	r = stg_ip_check(skb, p, data, end, &ip_end);
	if (r != STG_P_TCP)
		return r;
	/* The payload ends where IP says, not at skb->len: Ethernet padding
	 * of short frames is no payload. */
	p->pay_len = ip_end > p->pay_off ? ip_end - p->pay_off : 0;
	p->seq = bpf_ntohl(th->seq);
	p->ack = bpf_ntohl(th->ack_seq);
	p->flags = ((__u8 *)th)[13];

	if (p->ipv6) {
		struct ipv6hdr *ip6 = data + p->l3_off;

		if ((void *)(ip6 + 1) > end)
			return STG_P_PULL;
		saddr = (__u8 *)&ip6->saddr;
		daddr = (__u8 *)&ip6->daddr;
		__builtin_memcpy(p->c2s ? p->key.cli_addr : p->key.srv_addr,
				 saddr, 16);
		__builtin_memcpy(p->c2s ? p->key.srv_addr : p->key.cli_addr,
				 daddr, 16);
	} else {
		struct iphdr *ip = data + p->l3_off;

		if ((void *)(ip + 1) > end)
			return STG_P_PULL;
		stg_map4(p->c2s ? p->key.cli_addr : p->key.srv_addr, ip->saddr);
		stg_map4(p->c2s ? p->key.srv_addr : p->key.cli_addr, ip->daddr);
	}
	p->key.cli_port = p->c2s ? p->sport : p->dport;
	p->key.srv_port = p->c2s ? p->dport : p->sport;
	return STG_P_TCP;
}

#endif /* STG_PARSE_H */
