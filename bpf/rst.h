/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Turning the packet being judged into TCP RSTs, in place.
 *
 * The skb is trimmed to its headers (Ethernet, VLAN tags, IP header as it
 * was, 20 bytes of TCP: options and payload go), and every field of the
 * RST is written from values saved before (struct stg_pkt and the MACs),
 * so the same skb can be turned into the RST for either end in turn.
 *
 * Checksums: the IPv4 header sum is updated for the new total length (a
 * swap of addresses leaves it unchanged). The TCP sum is computed from
 * scratch, and written through bpf_l4_csum_replace() so that it is right
 * whatever skb->ip_summed is: with CHECKSUM_PARTIAL (egress, veth) the
 * field must hold the pseudo-header sum only, otherwise the full sum.
 */
#ifndef STG_RST_H
#define STG_RST_H

#define STG_TCP_HLEN 20

/* The RST's TCP header, built on the stack: a struct of ours, because
 * vmlinux.h's tcphdr carries CO-RE relocations, and its bitfields differ
 * between kernels ("ae" exists only from 6.x on): zeroing it would not
 * load on 5.10 or 6.1. */
struct stg_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff;		/* data offset, in the high nibble */
	__u8 flags;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

static __always_inline __u32 stg_sum16(const void *p, int words)
{
	const __u16 *w = p;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		s += w[i];
	return s;
}

/* Trim the skb to the RST's length. Invalidates packet pointers. */
static __always_inline int stg_rst_trim(struct __sk_buff *skb,
					const struct stg_pkt *p)
{
	__u32 len = p->l4_off + STG_TCP_HLEN;

	if (skb->len == len)
		return 0;
	return bpf_skb_change_tail(skb, len, 0);
}

/*
 * Write an RST|ACK with @seq and @ack. @reverse: from the packet's
 * receiver to its sender (addresses, ports and MACs swapped), else along
 * the packet's own direction. @mac holds the original destination and
 * source MACs. Returns 0 or -1. Invalidates packet pointers.
 */
static __always_inline int stg_rst_write(struct __sk_buff *skb,
					 const struct stg_pkt *p,
					 const __u8 mac[12], int reverse,
					 __u32 seq, __u32 ack)
{
	void *data = stg_data(skb);
	void *end = stg_data_end(skb);
	struct ethhdr *eth = data;
	__u32 l3 = p->l3_off & 0xff, l4 = p->l4_off & 0x7ff;
	const __u8 *src, *dst;	/* the RST's source and destination address */
	__u16 sport, dport;
	struct tcphdr *th;
	__u32 pseudo;

	if ((void *)(eth + 1) > end)
		return -1;
	/* The original direction's addresses, as the key has them. */
	src = p->c2s ? p->key.cli_addr : p->key.srv_addr;
	dst = p->c2s ? p->key.srv_addr : p->key.cli_addr;
	sport = p->sport;
	dport = p->dport;
	if (reverse) {
		const __u8 *t = src;

		src = dst;
		dst = t;
		sport = p->dport;
		dport = p->sport;
		__builtin_memcpy(eth->h_dest, mac + 6, 6);
		__builtin_memcpy(eth->h_source, mac, 6);
	} else {
		__builtin_memcpy(eth->h_dest, mac, 6);
		__builtin_memcpy(eth->h_source, mac + 6, 6);
	}

	if (p->ipv6) {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		ip6->payload_len = bpf_htons(l4 - l3 - sizeof(*ip6) +
					     STG_TCP_HLEN);
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
		pseudo = stg_sum16(src, 8) + stg_sum16(dst, 8);
	} else {
		struct iphdr *ip = data + l3;
		__u16 old, new;

		if ((void *)(ip + 1) > end)
			return -1;
		old = ip->tot_len;
		new = bpf_htons(l4 - l3 + STG_TCP_HLEN);
		/* RFC 1624: HC' = ~(~HC + ~m + m') */
		ip->check = ~stg_csum_fold((__u16)~ip->check + (__u16)~old + new);
		ip->tot_len = new;
		__builtin_memcpy(&ip->saddr, src + 12, 4);
		__builtin_memcpy(&ip->daddr, dst + 12, 4);
		pseudo = stg_sum16(src + 12, 2) + stg_sum16(dst + 12, 2);
	}
	pseudo += bpf_htons(IPPROTO_TCP) + bpf_htons(STG_TCP_HLEN);

	th = data + l4;
	if ((void *)(th + 1) > end)
		return -1;
	struct stg_tcphdr t = {
		.source = bpf_htons(sport),
		.dest = bpf_htons(dport),
		.seq = bpf_htonl(seq),
		.ack_seq = bpf_htonl(ack),
		.doff = (STG_TCP_HLEN / 4) << 4,
		.flags = STG_TCP_RST | STG_TCP_ACK,
	};
	__builtin_memcpy(th, &t, sizeof(t));
	__u32 hsum = stg_sum16(&t, STG_TCP_HLEN / 2);

	/* First the pseudo-header (kept alone under CHECKSUM_PARTIAL), then
	 * the header (ignored under CHECKSUM_PARTIAL). */
	if (bpf_l4_csum_replace(skb, l4 + offsetof(struct tcphdr, check), 0,
				pseudo, BPF_F_PSEUDO_HDR))
		return -1;
	if (bpf_l4_csum_replace(skb, l4 + offsetof(struct tcphdr, check), 0,
				hsum, 0))
		return -1;
	return 0;
}

#endif /* STG_RST_H */
