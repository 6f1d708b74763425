/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The #defines that vmlinux.h lacks (it carries types, not macros). */
#ifndef STG_COMPAT_H
#define STG_COMPAT_H

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define STG_PACKET_BROADCAST 1	/* skb->pkt_type */
#define STG_PACKET_MULTICAST 2

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define NEXTHDR_HOP 0
#define NEXTHDR_TCP 6
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

/* skb->data and skb->data_end, read so that clang cannot fold the
 * offset into a modified ctx pointer (which the verifier refuses). */
static __always_inline void *stg_data(const struct __sk_buff *skb)
{
	void *p;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(p)
		     : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, data)));
	return p;
}

static __always_inline void *stg_data_end(const struct __sk_buff *skb)
{
	void *p;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(p)
		     : "r"(skb),
		       "i"(__builtin_offsetof(struct __sk_buff, data_end)));
	return p;
}

/* Make clang keep state in memory across a loop iteration rather than in
 * registers: the verifier then meets the same registers at the loop head
 * on every path and prunes, instead of walking each path apart. */
#define stg_barrier() asm volatile("" ::: "memory")

#endif /* STG_COMPAT_H */
