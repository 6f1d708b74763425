// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * starttls-guard: a TC program that resets SMTP connections which send a
 * plaintext command other than EHLO/HELO/STARTTLS/NOOP/RSET/HELP/QUIT
 * before TLS. Attach it to ingress and egress of an interface; the loader
 * (user/starttls-guard.c) does that, pins the maps and fills "config".
 *
 * To load it by hand for debugging (clsact, maps unpinned and empty, so
 * nothing is guarded until "config" is written, e.g. with bpftool):
 *   tc qdisc add dev eth0 clsact
 *   tc filter add dev eth0 ingress bpf da obj starttls_guard.bpf.o sec tc
 *   tc filter add dev eth0 egress bpf da obj starttls_guard.bpf.o sec tc
 *
 * Per packet: parse the headers; traffic that is not TCP on a guarded port
 * leaves at once. Then the connection's state (map "conns") decides:
 * encrypted, exempt and monitored connections pass, reset ones drop, and
 * the rest have their payload judged by include/smtp.h, in TCP sequence
 * order. A violation drops the packet and sends an RST to both ends.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "compat.h"
#include "starttls_guard.h"
#include "parse.h"
#include "rst.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* What this program returns for packets it lets through: "no opinion",
 * so that other programs on the hook still run (TCX_NEXT for TCX). */
#define STG_PASS TC_ACT_UNSPEC

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stg_config);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STG_MAX_CONNS);
	__type(key, struct stg_conn_key);
	__type(value, struct stg_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, STG_MAX_HOSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct stg_host_key);
	__type(value, struct stg_host);
} hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STG_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Payload is judged by programs of their own, stg_scan_cli and
 * stg_scan_srv, STG_CHUNK bytes a run, which tail-call themselves for the
 * next chunk: this keeps each program small enough for the 5.10 verifier
 * without bpf_loop(). What they need is
 * handed over here (per CPU: a tail call does not change CPU). Payload is
 * copied into buf with bpf_skb_load_bytes, so it is read the same whether
 * it sits in the linear area or in page fragments.
 */
struct stg_scan_ctx {
	struct stg_pkt pkt;
	__u32 pos;		/* next payload byte to judge (skb offset) */
	__u32 stop;		/* end of the payload (skb offset) */
	__u32 end_seq;		/* sequence number after the payload */
	__s32 ingress;
	__s32 ev;		/* SMTP_EV_* seen in this packet */
	__u32 reason;		/* the violation found, for stg_violate */
	__u32 slot;		/* the scan program for the payload (STG_JMP_*) */
	__u32 first;		/* the one to start with */
	__u8 buf[STG_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stg_scan_ctx);
} scratch SEC(".maps");

/* Which scan programs the loader chose: 1 those with bpf_loop(), 0 the
 * chained ones (see stg_scan_chain and stg_scan_loop). */
const volatile __u32 stg_loop = 0;

/* The scan programs, filled in by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, STG_JMP_MAX);
	__type(key, __u32);
	__type(value, __u32);
} jmp SEC(".maps");

/* Where the guard is attached (see struct stg_iface). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STG_MAX_IFACES);
	__type(key, struct stg_iface_key);
	__type(value, struct stg_iface);
} ifaces SEC(".maps");

/* Decisions worth knowing, for "starttls-guard events" (struct stg_event) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, STG_EVENTS_SIZE);
} events SEC(".maps");

/* Events sent by this CPU in the second from @start */
struct stg_evlimit {
	__u64 start;
	__u64 n;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stg_evlimit);
} evlimit SEC(".maps");

static __always_inline void stg_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

/* Send an event of @type about the packet's connection (@c, if tracked,
 * in @phase before the decision), within the rate limits. A client
 * command's violation carries its verb: the bytes before its first
 * space, never what follows (an address, credentials). */
static __always_inline void stg_event(struct __sk_buff *skb,
				      const struct stg_pkt *p,
				      struct stg_conn *c, int ingress,
				      __u32 type, __u32 phase, __u32 reason)
{
	__u64 now = bpf_ktime_get_ns();
	struct stg_evlimit *l;
	struct stg_event *e;
	__u32 zero = 0;

	l = bpf_map_lookup_elem(&evlimit, &zero);
	if (!l)
		return;
	if (now - l->start >= 1000000000ULL) {
		l->start = now;
		l->n = 0;
	}
	if (l->n >= STG_EVENTS_PER_SEC ||
	    (c && c->events >= STG_EVENTS_PER_CONN)) {
		stg_count(STG_C_EVENTS_LIMITED);
		return;
	}
	l->n++;
	if (c)
		c->events++;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stg_count(STG_C_EVENTS_LOST);
		return;
	}
	e->time_ns = now;
	__builtin_memcpy(&e->key, &p->key, sizeof(e->key));
	e->ifindex = skb->ifindex;
	e->type = type;
	e->ingress = ingress;
	e->phase = phase;
	e->reason = reason;
	e->pad = 0;
	e->verb[0] = 0;
	e->verb[1] = 0;
	if (c && p->c2s && (reason == STG_R_PLAINTEXT_COMMAND ||
			    reason == STG_R_AFTER_REFUSED)) {
		e->verb[0] = c->smtp.verb;
		e->verb[1] = c->smtp.verb2;
	}
	bpf_ringbuf_submit(e, 0);
}

/* The host map's action for a connection: the longest prefix matching
 * either end wins (deny on a tie), else the default action. */
static __always_inline __u32 stg_host_action(const struct stg_conn_key *k,
					     const struct stg_config *cfg)
{
	struct stg_host_key hk = { .prefixlen = 128 };
	__u32 act = cfg->default_action, best = 0;
	struct stg_host *h;
	int found = 0;

	__builtin_memcpy(hk.addr, k->cli_addr, 16);
	h = bpf_map_lookup_elem(&hosts, &hk);
	if (h) {
		act = h->action;
		best = h->prefixlen;
		found = 1;
	}
	__builtin_memcpy(hk.addr, k->srv_addr, 16);
	h = bpf_map_lookup_elem(&hosts, &hk);
	if (h && (!found || h->prefixlen > best ||
		  (h->prefixlen == best && h->action == STG_ACT_DENY)))
		act = h->action;
	return act;
}

/* a - b in TCP sequence space */
static __always_inline __s32 stg_seq_diff(__u32 a, __u32 b)
{
	return (__s32)(a - b);
}

/*
 * Is the connection's server a socket of this host? Then its packets leave
 * through egress, and one arriving on ingress with new data is forged (a
 * client spoofing the server's address to feed the guard a "220"). On a
 * router, or for a local client (outbound), server packets do arrive on
 * ingress, and no local socket matches.
 */
static __always_inline int stg_server_local(struct __sk_buff *skb,
					    const struct stg_pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 len;
	int local;

	if (p->ipv6) {
		__builtin_memcpy(t.ipv6.saddr, p->key.cli_addr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->key.srv_addr, 16);
		t.ipv6.sport = bpf_htons(p->key.cli_port);
		t.ipv6.dport = bpf_htons(p->key.srv_port);
		len = sizeof(t.ipv6);
	} else {
		__builtin_memcpy(&t.ipv4.saddr, p->key.cli_addr + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, p->key.srv_addr + 12, 4);
		t.ipv4.sport = bpf_htons(p->key.cli_port);
		t.ipv4.dport = bpf_htons(p->key.srv_port);
		len = sizeof(t.ipv4);
	}
	sk = bpf_sk_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	/* A listener on the port says nothing about this connection (a
	 * local MTA listens on 25 and also connects out to 25). */
	local = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return local;
}

/* New server data or a SYN-ACK arriving on ingress for a local server. */
static __always_inline int stg_spoofed(struct __sk_buff *skb,
				       const struct stg_pkt *p, int ingress)
{
	if (!ingress || p->c2s || !(p->pay_len || (p->flags & STG_TCP_SYN)) ||
	    !stg_server_local(skb, p))
		return 0;
	stg_count(STG_C_SPOOFED);
	return 1;
}

/*
 * Reset the connection: RST to the packet's sender (cloned and sent back
 * out of the interface it came from) and, when @both, to its receiver (the
 * skb itself, rewritten, goes on its way). @fwd_nxt: the next byte the
 * receiver expects from the sender; @rev_nxt: the next byte the sender
 * expects from the receiver. Returns the TC verdict for the skb.
 */
static __always_inline int stg_reset(struct __sk_buff *skb,
				     const struct stg_pkt *p, int ingress,
				     int both, __u32 fwd_nxt, __u32 rev_nxt)
{
	void *data = stg_data(skb);
	void *end = stg_data_end(skb);
	__u8 mac[12];

	if (data + sizeof(mac) > end)
		goto fail;
	__builtin_memcpy(mac, data, sizeof(mac));
	if (stg_rst_trim(skb, p))
		goto fail;
	if (stg_rst_write(skb, p, mac, 1, rev_nxt, fwd_nxt))
		goto fail;
	/* From ingress the sender is reached through egress, and from
	 * egress (a local sender) through ingress. */
	if (bpf_clone_redirect(skb, skb->ifindex, ingress ? 0 : BPF_F_INGRESS))
		goto fail;
	if (!both)
		return TC_ACT_SHOT;
	if (stg_rst_write(skb, p, mac, 0, fwd_nxt, rev_nxt))
		goto fail;
	return TC_ACT_OK;
fail:
	stg_count(STG_C_RST_FAILED);
	return TC_ACT_SHOT;
}

/* Record a violation of connection @c: in monitor mode it is counted and
 * judging stops (returns 1: pass), else the connection is blocked: every
 * later packet is dropped (returns 0: reset it). */
static __always_inline int stg_mark(struct __sk_buff *skb,
				    const struct stg_pkt *p, struct stg_conn *c,
				    const struct stg_config *cfg, __u32 reason,
				    int ingress)
{
	int monitor = cfg->mode == STG_MODE_MONITOR;

	c->reason = reason;
	stg_event(skb, p, c, ingress, monitor ? STG_EV_MONITOR :
				      reason == STG_R_DENIED_HOST ? STG_EV_DENIED :
								  STG_EV_RESET,
		  c->smtp.phase, reason);
	if (monitor) {
		c->smtp.phase = STG_MONITORED;
		stg_count(STG_C_MONITOR_HITS);
		return 1;
	}
	c->smtp.phase = STG_BLOCKED;
	stg_count(STG_C_RESETS + (reason < STG_R_MAX ? reason : 0));
	return 0;
}

/* Act on a violation of connection @c: in enforce mode reset it and drop
 * every later packet; in monitor mode count it and stop judging. */
static __always_inline int stg_violation(struct __sk_buff *skb,
					 const struct stg_pkt *p,
					 struct stg_conn *c,
					 const struct stg_config *cfg,
					 __u32 reason, int ingress)
{
	__u32 fwd = p->c2s ? c->cli_nxt : c->srv_nxt;
	__u32 rev = p->c2s ? c->srv_nxt : c->cli_nxt;

	if (stg_mark(skb, p, c, cfg, reason, ingress))
		return STG_PASS;
	/* The sender may already have seen more of the other direction
	 * than we did: its ACK says where it is. */
	if (stg_seq_diff(p->ack, rev) > 0 && (p->flags & STG_TCP_ACK))
		rev = p->ack;
	return stg_reset(skb, p, ingress, 1, fwd, rev);
}

#define STG_TCP_URG 0x20

/*
 * Is this client segment one that the server's TCP discards? Judging it
 * would let other bytes come later at the same sequence number: data
 * without ACK, an ACK of server data never sent or from before the
 * connection. (TCP-MD5 and TCP-AO options: stg_check.)
 */
static __always_inline int stg_discarded(const struct stg_pkt *p,
					 const struct stg_conn *c)
{
	if (!(p->flags & STG_TCP_ACK))
		return 1;
	/* An ACK older than one the client sent before may be "too old"
	 * for the server (RFC 5961 5.2: below its snd_una less its largest
	 * window), which drops the data: a legitimate client acks in
	 * order, and a segment reordered behind a newer ACK is sent
	 * again. */
	return !(c->flags & STG_F_SRV_UNKNOWN) &&
	       (stg_seq_diff(p->ack, c->srv_nxt) > 0 ||
		stg_seq_diff(p->ack, c->srv_base) < 0 ||
		stg_seq_diff(p->ack, c->cli_acked) < 0);
}

/* Does the payload start with a byte that is no text (not printable
 * ASCII, tab, CR or LF) within its first 16 bytes? Ciphertext does (all
 * 16 printable by chance: about 1 in 10^7). */
static __always_inline int stg_binary(struct __sk_buff *skb,
				      const struct stg_pkt *p)
{
	__u64 n = p->pay_len;
	__u8 b[16];

	if (n > sizeof(b))
		n = sizeof(b);
	if (n == 0)
		return 0;
	/* 1 <= n <= 16 in a form older verifiers see */
	n -= 1;
	asm volatile("%0 &= %1" : "+r"(n) : "i"(sizeof(b) - 1));
	n += 1;
	if (bpf_skb_load_bytes(skb, p->pay_off, b, n))
		return 0;
	for (__u32 i = 0; i < sizeof(b); i++) {
		if (i >= n)
			break;
		if ((b[i] < 0x20 && b[i] != '\t' && b[i] != '\r' &&
		     b[i] != '\n') || b[i] > 0x7e)
			return 1;
	}
	return 0;
}

/* A packet of a connection picked up with a TLS record (STG_PICKUP_TLS):
 * TLS when the other side sends no text either; text from either side is
 * a plaintext session that fed the guard something else first. */
static __always_inline int stg_pickup_tls(struct __sk_buff *skb,
					  struct stg_pkt *p,
					  struct stg_conn *c,
					  const struct stg_config *cfg,
					  int ingress)
{
	if (!p->pay_len)
		return STG_PASS;
	if (!p->c2s && stg_spoofed(skb, p, ingress))
		return TC_ACT_SHOT;
	if (!stg_binary(skb, p))
		return stg_violation(skb, p, c, cfg, STG_R_PICKUP_NOT_TLS,
				     ingress);
	if (!(c->flags & STG_F_PICKUP_C2S) != !p->c2s)
		c->smtp.phase = STG_TLS;
	return STG_PASS;
}

/* Judge the payload of a packet of connection @c (phase below STG_TLS):
 * in sequence order, then by the scan programs. */
static __always_inline int stg_inspect(struct __sk_buff *skb,
				       struct stg_pkt *p, struct stg_conn *c,
				       const struct stg_config *cfg,
				       int ingress)
{
	__u32 nxt = p->c2s ? c->cli_nxt : c->srv_nxt;
	__u32 seq = p->seq, end = seq + p->pay_len, skip, zero = 0;
	__u32 unknown = p->c2s ? STG_F_CLI_UNKNOWN : STG_F_SRV_UNKNOWN;
	int tfo = (p->flags & STG_TCP_SYN) && (c->flags & STG_F_TFO);
	struct stg_scan_ctx *x;
	__u32 limit;

	/* Picked up with bytes that are not text: the other side's show
	 * whether it is TLS; the client's are read for commands meanwhile
	 * when they came first. */
	if (c->smtp.phase == STG_PICKUP_TLS &&
	    !(p->c2s && (c->flags & STG_F_PICKUP_C2S)))
		return stg_pickup_tls(skb, p, c, cfg, ingress);
	if (p->c2s && p->pay_len && !tfo && (c->flags & STG_F_TFO)) {
		/* Data after a SYN with data, before the SYN-ACK that says
		 * whether the server took it: no client sends that. */
		stg_count(STG_C_UNACCEPTABLE);
		return TC_ACT_SHOT;
	}
	if (p->pay_len && (p->flags & (STG_TCP_SYN | STG_TCP_RST)) && !tfo) {
		/* Data the receiver does not take in: on an RST (passed
		 * unjudged), or on a SYN of an established connection. */
		if (p->flags & STG_TCP_RST)
			return STG_PASS;
		stg_count(STG_C_UNACCEPTABLE);
		return TC_ACT_SHOT;
	}
	if (p->c2s && (p->pay_len || (p->flags & STG_TCP_URG)) && !tfo &&
	    stg_discarded(p, c)) {
		stg_count(STG_C_UNACCEPTABLE);
		return TC_ACT_SHOT;
	}

	/* The client's ACK, from a segment the server takes (not one
	 * beyond a gap: the server holds it back, and the segments before
	 * it carry lower ACKs). */
	if (p->c2s && (p->flags & STG_TCP_ACK) &&
	    (stg_seq_diff(seq, nxt) <= 0 || (c->flags & unknown)) &&
	    ((c->flags & STG_F_SRV_UNKNOWN) ||
	     (stg_seq_diff(p->ack, c->cli_acked) > 0 &&
	      stg_seq_diff(p->ack, c->srv_nxt) <= 0)))
		c->cli_acked = p->ack;
	if (!p->pay_len) {
		/* An urgent pointer on a bare ACK in sequence: the byte it
		 * points at will be taken out of the stream. */
		if (p->c2s && (p->flags & STG_TCP_URG) && seq == nxt &&
		    !(c->flags & unknown))
			return stg_violation(skb, p, c, cfg, STG_R_URGENT_DATA,
					     ingress);
		return STG_PASS;
	}
	if (c->flags & unknown) {
		/* Picked up: this direction's stream starts here. */
		if (stg_spoofed(skb, p, ingress))
			return TC_ACT_SHOT;
		c->flags &= ~unknown;
		nxt = seq;
		if (p->c2s)
			c->cli_nxt = c->cli_base = seq;
		else
			c->srv_nxt = c->srv_base = seq;
	}
	if (stg_seq_diff(end, nxt) <= 0) {
		/* Wholly judged before: a retransmission. Unless it starts
		 * before the first byte tracked: nothing there was judged
		 * (a forged SYN-ACK can move where tracking starts). */
		if (stg_seq_diff(seq, p->c2s ? c->cli_base : c->srv_base) < 0) {
			stg_count(STG_C_OUT_OF_WINDOW);
			return TC_ACT_SHOT;
		}
		stg_count(STG_C_RETRANSMITS);
		return STG_PASS;
	}
	if (stg_spoofed(skb, p, ingress))
		return TC_ACT_SHOT;
	if (stg_seq_diff(seq, nxt) > 0) {
		/* Beyond a gap: judged when the gap is filled (the sender
		 * retransmits what is never acknowledged). */
		stg_count(STG_C_OUT_OF_ORDER);
		return TC_ACT_SHOT;
	}
	/* Urgent data is taken out of the stream by the server's TCP
	 * (Postfix does not set SO_OOBINLINE): it reads other bytes. */
	if (p->c2s && (p->flags & STG_TCP_URG))
		return stg_violation(skb, p, c, cfg, STG_R_URGENT_DATA, ingress);
	skip = nxt - seq; /* overlap: judge only what is new */
	x = bpf_map_lookup_elem(&scratch, &zero);
	/* Bytes parsed to the end only up to STARTTLS's reply: after it the
	 * client's are judged by their first bytes, the server's by its
	 * first (stg_check), however large the packet. */
	limit = stg_loop ? STG_MAX_SCAN_LOOP :
		(c->smtp.policy & SMTP_P_AUTH_ONLY) ? STG_MAX_SCAN_AUTH :
						      STG_MAX_SCAN;
	if (!x || (p->pay_len - skip > limit + c->smtp.skip &&
		   c->smtp.phase <= STG_STARTTLS_SENT))
		goto uninspectable;
	x->pkt = *p;
	x->pos = p->pay_off + skip;
	x->stop = p->pay_off + p->pay_len;
	x->end_seq = end;
	x->ingress = ingress;
	x->ev = 0;
	x->slot = !p->c2s ? STG_JMP_SRV :
		  c->smtp.phase == STG_PICKUP_TLS ? STG_JMP_PICKUP :
		  (c->smtp.policy & SMTP_P_AUTH_ONLY) ? STG_JMP_CLI_AUTH :
							 STG_JMP_CLI;
	/* a message body (auth-only) is read by a program of its own */
	x->first = c->smtp.body ? STG_JMP_BODY : x->slot;
	bpf_tail_call(skb, &jmp, STG_JMP_CHECK);
	/* Not reached unless the tail call failed. */
uninspectable:
	return stg_violation(skb, p, c, cfg, STG_R_UNINSPECTABLE, ingress);
}

/* Is a connection that starts here in the direction the guard judges?
 * Inbound: its client's packets arrive on this ingress (its server's
 * leave through this egress); outbound: the other way round. */
static __always_inline int stg_direction_ok(const struct stg_pkt *p,
					    const struct stg_config *cfg,
					    int ingress)
{
	__u32 off = p->c2s == !!ingress ? STG_CFG_NO_INBOUND
				       : STG_CFG_NO_OUTBOUND;

	return !(cfg->flags & off);
}

/* Start tracking a connection. @flags: STG_F_*_UNKNOWN when picked up
 * mid-stream (then as if past the greeting). */
static __always_inline struct stg_conn *
stg_track(const struct stg_pkt *p, const struct stg_config *cfg,
	  __u32 cli_nxt, __u32 srv_nxt, __u32 flags, __u32 action)
{
	int pickup = (flags & STG_F_CLI_UNKNOWN) ||
		     (flags & (STG_F_SRV_UNKNOWN | STG_F_TFO)) == STG_F_SRV_UNKNOWN;
	struct stg_conn c = {};

	smtp_init(&c.smtp, pickup);
	c.cli_nxt = c.cli_base = cli_nxt;
	c.srv_nxt = c.srv_base = c.cli_acked = srv_nxt;
	c.flags = flags;
	if (action == STG_ACT_EXEMPT) {
		c.smtp.phase = STG_EXEMPT;
		stg_count(STG_C_EXEMPT);
	} else if (!pickup && stg_port_in(cfg->tls_ports, p->key.srv_port)) {
		/* Implicit TLS: the client's first bytes must be its hello. */
		c.smtp.phase = STG_TLS_GO;
	}
	/* Auth-only follows message bodies from the server's 354: one-way,
	 * where it is not seen, the policy is encrypt. Picked up, which
	 * reply answers which command is not known: encrypt, no upgrade
	 * (one-way sees every connection from its middle: upgrades). */
	if (cfg->flags & STG_CFG_ONE_WAY)
		c.smtp.policy |= SMTP_P_ONE_WAY;
	else if (pickup)
		c.smtp.policy |= SMTP_P_NO_UPGRADE;
	else if (action == STG_ACT_AUTH_ONLY ||
		 stg_port_in(cfg->auth_ports, p->key.srv_port))
		c.smtp.policy |= SMTP_P_AUTH_ONLY;
	/* Entries made are counted (a new connection on a tuple with state
	 * replaces it): with those removed at the close and those left, the
	 * loader tells how many the table evicted. */
	if (!bpf_map_update_elem(&conns, &p->key, &c, BPF_NOEXIST))
		stg_count(STG_C_CONNECTIONS);
	else if (bpf_map_update_elem(&conns, &p->key, &c, BPF_EXIST))
		return NULL;
	return bpf_map_lookup_elem(&conns, &p->key);
}

/* stg_untracked(): the packet's payload is to be judged. */
#define STG_INSPECT 0x7fff

/* A packet of a connection without state (or a SYN, or a SYN-ACK that
 * starts one afresh; @live: the entry on the tuple, if any). Returns a
 * verdict, or STG_INSPECT with *cp set. */
static __always_inline int stg_untracked(struct __sk_buff *skb,
					 struct stg_pkt *p,
					 const struct stg_config *cfg,
					 int ingress, int live,
					 struct stg_conn **cp)
{
	__u8 syn = p->flags & (STG_TCP_SYN | STG_TCP_ACK);
	int monitor = cfg->mode == STG_MODE_MONITOR;
	struct stg_conn *c;
	__u32 action;

	if (!stg_direction_ok(p, cfg, ingress))
		return STG_PASS;
	if (syn == STG_TCP_SYN) {
		/* A connection attempt: refused here for denied hosts. No
		 * state yet, so that a SYN flood cannot evict live ones. */
		action = stg_host_action(&p->key, cfg);
		if (action == STG_ACT_DENY && p->c2s) {
			stg_count(STG_C_DENIED);
			stg_event(skb, p, NULL, ingress,
				  monitor ? STG_EV_MONITOR : STG_EV_DENIED,
				  STG_PLAIN, STG_R_DENIED_HOST);
			if (monitor) {
				stg_count(STG_C_MONITOR_HITS);
				return STG_PASS;
			}
			stg_count(STG_C_RESETS + STG_R_DENIED_HOST);
			return stg_reset(skb, p, ingress, 0, p->seq + 1, 0);
		}
		if (!p->pay_len || action == STG_ACT_EXEMPT)
			return STG_PASS;
		/* Data on a SYN that no server takes: on a tuple with a live
		 * connection (its server answers with a challenge ACK), or
		 * where the server's answer is not seen (one-way: whether it
		 * took the data would not be known). Dropped: the client
		 * sends its SYN again without data. */
		if (!p->c2s || live || (cfg->flags & STG_CFG_ONE_WAY)) {
			stg_count(STG_C_UNACCEPTABLE);
			return TC_ACT_SHOT;
		}
		/* Data on a SYN (TCP Fast Open) is judged as any other, from
		 * the byte after the SYN; the SYN-ACK tells whether the
		 * server took it (stg_guard). */
		c = stg_track(p, cfg, p->seq + 1, 0,
			      STG_F_SRV_UNKNOWN | STG_F_TFO | STG_F_SYN, action);
		if (!c)
			return TC_ACT_SHOT;
		c->syn_seq = p->seq;
		p->seq += 1;
		stg_count(STG_C_SYN_PAYLOADS);
	} else if (syn == (STG_TCP_SYN | STG_TCP_ACK) && !p->c2s) {
		action = stg_host_action(&p->key, cfg);
		c = stg_track(p, cfg, p->ack, p->seq + 1, 0, action);
	} else if (p->pay_len && !(p->flags & STG_TCP_RST)) {
		/* Payload of a connection that began before we were
		 * attached (or whose state was evicted). The other
		 * direction's stream starts with its next packet (its ACK
		 * here may lag behind data in flight). */
		action = stg_host_action(&p->key, cfg);
		c = p->c2s ? stg_track(p, cfg, p->seq, p->ack,
				       STG_F_SRV_UNKNOWN, action)
			   : stg_track(p, cfg, p->ack, p->seq,
				       STG_F_CLI_UNKNOWN, action);
		if (!c)
			return TC_ACT_SHOT;
		if (c->smtp.phase == STG_PLAIN && action != STG_ACT_DENY) {
			if (cfg->flags & STG_CFG_MIDSTREAM_PASS) {
				c->smtp.phase = STG_EXEMPT;
				stg_count(STG_C_PICKUP_PASSED);
				return STG_PASS;
			}
			if (stg_binary(skb, p)) {
				/* Not text: TLS seen from its middle, once
				 * the other side sends no text either; the
				 * client's bytes are read for commands till
				 * then. */
				c->smtp.phase = STG_PICKUP_TLS;
				stg_count(STG_C_PICKUP_TLS);
				if (!p->c2s)
					return STG_PASS;
				c->flags |= STG_F_PICKUP_C2S;
				*cp = c;
				return STG_INSPECT;
			}
			/* Text: judged as after the greeting. */
			stg_count(STG_C_PICKUP_PLAIN);
		}
	} else {
		return STG_PASS;
	}
	if (!c)
		return STG_PASS;
	if (action == STG_ACT_DENY) {
		stg_count(STG_C_DENIED);
		return stg_violation(skb, p, c, cfg, STG_R_DENIED_HOST, ingress);
	}
	if (action == STG_ACT_EXEMPT)
		stg_event(skb, p, c, ingress, STG_EV_EXEMPT, STG_PLAIN, 0);
	if (c->smtp.phase >= STG_PICKUP_TLS || !p->pay_len)
		return STG_PASS;
	*cp = c;
	return STG_INSPECT;
}

/* Does this packet end the connection's entry? An RST the receiver takes
 * (at its next sequence number; any, once the stream is no longer
 * followed), or once both sides have sent their FIN, a packet without
 * data (the last ACK). A mistaken end costs at most a reset: a
 * connection without state is judged strictly when picked up again. A reset connection keeps
 * its entry (until evicted, or a new connection on its tuple): its
 * packets still in flight are dropped, not judged again. */
static __always_inline int stg_closes(struct stg_conn *c,
				      const struct stg_pkt *p)
{
	__u32 nxt = p->c2s ? c->cli_nxt : c->srv_nxt;

	if (c->smtp.phase == STG_BLOCKED)
		return 0;
	/* a FIN counts in sequence only (one out of the window is dropped
	 * by the receiver), or once the streams are no longer followed */
	if ((p->flags & STG_TCP_FIN) &&
	    (p->seq == nxt || c->smtp.phase >= STG_TLS ||
	     (c->flags & (p->c2s ? STG_F_CLI_UNKNOWN : STG_F_SRV_UNKNOWN))))
		c->flags |= p->c2s ? STG_F_FIN_CLI : STG_F_FIN_SRV;
	if (p->flags & STG_TCP_RST)
		return c->smtp.phase >= STG_TLS ||
		       (c->flags & (STG_F_CLI_UNKNOWN | STG_F_SRV_UNKNOWN)) ||
		       p->seq == nxt || /* after its FIN, one further */
		       (p->seq == nxt + 1 &&
			(c->flags & (p->c2s ? STG_F_FIN_CLI : STG_F_FIN_SRV)));
	return !p->pay_len && (c->flags & (STG_F_FIN_CLI | STG_F_FIN_SRV)) ==
				      (STG_F_FIN_CLI | STG_F_FIN_SRV);
}

static __always_inline int stg_guard(struct __sk_buff *skb, int ingress)
{
	__u32 zero = 0;
	struct stg_config *cfg = bpf_map_lookup_elem(&settings, &zero);
	struct stg_conn *c;
	struct stg_pkt p;
	int r;

	if (!cfg || cfg->mode == STG_MODE_OFF)
		return STG_PASS;
	r = stg_parse(skb, &p, cfg);
	if (r == STG_P_PULL) {
		__u32 len = skb->len < STG_PULL_LEN ? skb->len : STG_PULL_LEN;

		r = bpf_skb_pull_data(skb, len) ? STG_P_UNWALKABLE
						: stg_parse(skb, &p, cfg);
	}
	if (r == STG_P_UNWALKABLE || r == STG_P_PULL) {
		/* Ports unknown (headers cut short, as in a tiny first
		 * fragment, or too deep): cannot tell whether it is SMTP. */
		stg_count(STG_C_UNINSPECTABLE);
		return TC_ACT_SHOT;
	}
	if (r != STG_P_TCP)
		return STG_PASS;

	/* TCP takes nothing sent to a broadcast or multicast address: not
	 * judged, so that nothing is credited that the server never read. */
	if (ingress && (skb->pkt_type == STG_PACKET_BROADCAST ||
			skb->pkt_type == STG_PACKET_MULTICAST))
		return STG_PASS;
	stg_count(STG_C_PACKETS);
	c = bpf_map_lookup_elem(&conns, &p.key);
	if (c && !(p.flags & STG_TCP_SYN) &&
	    ((p.flags & (STG_TCP_FIN | STG_TCP_RST)) ||
	     (c->flags & (STG_F_FIN_CLI | STG_F_FIN_SRV))) &&
	    stg_closes(c, &p)) {
		bpf_map_delete_elem(&conns, &p.key);
		stg_count(STG_C_CLOSED);
		return STG_PASS;
	}
	if (c && c->smtp.phase >= STG_TLS && !(p.flags & STG_TCP_SYN)) {
		/* The fast path: encrypted, exempt or reset connections. */
		if (c->smtp.phase != STG_BLOCKED || (p.flags & STG_TCP_RST))
			return STG_PASS;
		stg_count(STG_C_BLOCKED_DROPS);
		return TC_ACT_SHOT;
	}
	if (p.frag) {
		/* IP reassembly happens after TC: the payload of later
		 * fragments cannot be judged. */
		if (c ? (c->smtp.phase >= STG_TLS && c->smtp.phase != STG_BLOCKED)
		      : stg_host_action(&p.key, cfg) == STG_ACT_EXEMPT)
			return STG_PASS;
		stg_count(STG_C_FRAGMENTS);
		return TC_ACT_SHOT;
	}
	if (c && (p.flags & (STG_TCP_SYN | STG_TCP_ACK)) ==
			 (STG_TCP_SYN | STG_TCP_ACK) && !p.c2s &&
	    (c->flags & STG_F_TFO) && p.ack == c->cli_nxt &&
	    p.ack != c->syn_seq + 1) {
		/* The server took the SYN's data: the streams go on. */
		if (stg_spoofed(skb, &p, ingress))
			return TC_ACT_SHOT;
		c->srv_nxt = c->srv_base = p.seq + 1;
		c->flags &= ~(STG_F_TFO | STG_F_SRV_UNKNOWN);
		return STG_PASS;
	}
	/* A client SYN on a tuple with state may start a new connection:
	 * remember it. A SYN-ACK that answers it, with another initial
	 * sequence number than the one tracked, starts it (a forged SYN-ACK
	 * alone does not end a live connection's state). */
	if (c && (p.flags & (STG_TCP_SYN | STG_TCP_ACK)) == STG_TCP_SYN &&
	    p.c2s) {
		c->syn_seq = p.seq;
		c->flags |= STG_F_SYN;
	}
	if (!c || (p.flags & (STG_TCP_SYN | STG_TCP_ACK)) == STG_TCP_SYN ||
	    ((p.flags & STG_TCP_SYN) && !p.c2s && c->srv_base != p.seq + 1 &&
	     (c->flags & STG_F_SYN) && p.ack == c->syn_seq + 1)) {
		if (stg_spoofed(skb, &p, ingress))
			return TC_ACT_SHOT;
		r = !!c;
		c = NULL;
		r = stg_untracked(skb, &p, cfg, ingress, r, &c);
		if (r != STG_INSPECT || !c)
			return r;
	} else if (c->smtp.phase == STG_BLOCKED) {
		return TC_ACT_SHOT;
	} else if (c->smtp.phase >= STG_TLS) {
		return STG_PASS;
	}
	return stg_inspect(skb, &p, c, cfg, ingress);
}

/* The server's first byte after the client's TLS record header (phase
 * STG_TLS_HELLO): its own handshake record means TLS, and the packet
 * passes unparsed (returns 1); an alert means the handshake failed, and
 * the segment is parsed as plaintext again (returns 0); anything else is a
 * violation (returns 2 + the reason). Here rather than in the scan
 * program, which stays within what older verifiers accept. */
static __always_inline int stg_server_answer(struct __sk_buff *skb,
					     struct stg_scan_ctx *x)
{
	struct stg_conn *c = bpf_map_lookup_elem(&conns, &x->pkt.key);
	int v;
	__u8 b;

	if (!c || c->smtp.phase != STG_TLS_HELLO ||
	    bpf_skb_load_bytes(skb, x->pos, &b, 1))
		return 0;
	v = smtp_server_answer(&c->smtp, b, &x->ev);
	if (v)
		return 2 + v;
	if (x->ev & SMTP_EV_TLS_FAILED) {
		stg_count(STG_C_TLS_FAILED);
		return 0;
	}
	c->srv_nxt = x->end_seq;
	stg_count(STG_C_TLS_UPGRADES);
	stg_event(skb, &x->pkt, c, x->ingress, STG_EV_TLS, STG_TLS_HELLO, 0);
	return 1;
}

#define STG_TCPOPT_MD5 19
#define STG_TCPOPT_AO 29

/*
 * Before the payload handed over in "scratch" is judged: what of the
 * headers needs loops, and so a program of its own. A packet that the
 * receiving stack drops is passed unjudged, state untouched: an IPv4
 * header with a bad checksum; a client segment with a TCP-MD5 or TCP-AO
 * option (no keys on an SMTP socket) is dropped. IPv4 options other than
 * padding (source routes and the like, which the stack may refuse or
 * take elsewhere) are dropped. Then on to the scan program.
 */
SEC("tc")
int stg_check(struct __sk_buff *skb)
{
	__u32 zero = 0, sum = 0, i = 0;
	struct stg_scan_ctx *x = bpf_map_lookup_elem(&scratch, &zero);
	__u64 hl, olen;

	if (!x)
		return TC_ACT_SHOT;
	if (!x->pkt.ipv6) {
		/* 64-bit, so that the register passed to the helper is the
		 * one checked (20 <= hl <= 60) */
		hl = (__u64)x->pkt.l4_off - (__u64)x->pkt.l3_off;
		if (hl < 20 || hl > 60 ||
		    bpf_skb_load_bytes(skb, x->pkt.l3_off, x->buf, hl))
			return TC_ACT_SHOT;
		for (__u32 w = 0; w < 30; w++) {
			if (w >= hl / 2)
				break;
			sum += ((__u16 *)x->buf)[w];
		}
		if (stg_csum_fold(sum) != 0xffff)
			return STG_PASS; /* the stack drops it */
		for (__u32 b = 20; b < 60; b++) {
			if (b >= hl)
				break;
			if (x->buf[b] > 1) { /* not NOP or EOL */
				stg_count(STG_C_UNACCEPTABLE);
				return TC_ACT_SHOT;
			}
		}
	}
	olen = (__u64)x->pkt.pay_off - (__u64)x->pkt.l4_off;
	if (x->pkt.c2s && olen > STG_TCP_HLEN && olen <= 60) {
		olen -= STG_TCP_HLEN;
		if (bpf_skb_load_bytes(skb, x->pkt.l4_off + STG_TCP_HLEN,
				       x->buf, olen))
			return TC_ACT_SHOT;
		for (int n = 0; n < 40; n++) {
			__u8 kind, len;

			if (i >= olen || i >= 39)
				break;
			kind = x->buf[i];
			if (kind == 0)
				break;
			if (kind == STG_TCPOPT_MD5 || kind == STG_TCPOPT_AO) {
				stg_count(STG_C_UNACCEPTABLE);
				return TC_ACT_SHOT;
			}
			len = kind == 1 ? 1 : x->buf[i + 1];
			if (len < 1)
				break;
			i += len;
		}
	}
	if (!x->pkt.c2s) {
		int r = stg_server_answer(skb, x);
		struct stg_config *cfg;
		struct stg_conn *c;

		if (r == 1)
			return STG_PASS;
		if (r > 1) {
			cfg = bpf_map_lookup_elem(&settings, &zero);
			c = bpf_map_lookup_elem(&conns, &x->pkt.key);
			if (!cfg || !c)
				return TC_ACT_SHOT;
			return stg_violation(skb, &x->pkt, c, cfg, r - 2,
					     x->ingress);
		}
	}
	bpf_tail_call(skb, &jmp, x->first);
	stg_count(STG_C_UNINSPECTABLE);
	return TC_ACT_SHOT;
}

/*
 * The scan programs: judge the payload handed over in "scratch" (slots of
 * "jmp": STG_JMP_SRV server bytes, STG_JMP_CLI client bytes under
 * encrypt, STG_JMP_CLI_AUTH under auth-only, STG_JMP_BODY a message
 * body), one chunk at a time. Two variants of each, chosen by the loader:
 * where the kernel has bpf_loop() (5.17 on), one run takes every chunk of
 * the packet, however large (GRO, TSO, BIG TCP); before, each run takes
 * one chunk of STG_CHUNK bytes and tail-calls for the next, STG_MAX_SCAN
 * bytes at most (STG_MAX_SCAN_AUTH under auth-only).
 */
/* Which bytes a scan program reads (a constant in each: the code for
 * each is apart, and the verifier walks only its own). */
enum stg_kind {
	STG_K_SRV = 0,		/* server bytes */
	STG_K_CLI = 1,		/* client bytes, policy encrypt */
	STG_K_CLI_AUTH = 2,	/* client bytes, policy auth-only */
	STG_K_BODY = 3,		/* client bytes of a message body (auth-only) */
	STG_K_PICKUP = 4,	/* client bytes, picked up, not text so far */
};

/* Judge the next @chunk bytes (a power of two, STG_CHUNK at most) of the
 * payload; x->pos moves past them. Returns SMTP_OK or the violation
 * (STG_R_UNINSPECTABLE when unreadable). */
static __always_inline __u32 stg_scan_chunk(struct __sk_buff *skb,
					    struct stg_scan_ctx *x,
					    struct smtp_state *s,
					    const struct smtp_upgrade *up,
					    const int kind, const __u32 chunk)
{
	const int c2s = kind != STG_K_SRV, auth = kind >= STG_K_CLI_AUTH;
	__u32 reason, i;
	__u64 n;

	if (auth && s->skip) {
		/* Inside a BDAT chunk: skipped, not read. */
		n = x->stop - x->pos;
		if (n > s->skip)
			n = s->skip;
		s->skip -= n;
		x->pos += n;
		if (x->pos >= x->stop)
			return SMTP_OK;
	}
	/* 64-bit, so that the bounds checked are those of the register
	 * passed to the helper (1 <= n <= chunk) */
	n = x->stop > x->pos ? x->stop - x->pos : 0;
	if (n > chunk)
		n = chunk;
	if (n == 0)
		return STG_R_UNINSPECTABLE;
	/* 1 <= n <= chunk in a form that older verifiers (5.10, 6.1) see
	 * too: they learn nothing from n != 0. */
	n -= 1;
	asm volatile("%0 &= %1" : "+r"(n) : "i"(chunk - 1));
	n += 1;
	if (bpf_skb_load_bytes(skb, x->pos, x->buf, n))
		return STG_R_UNINSPECTABLE;
	/* Each loop stops where the bytes are to be read another way: a
	 * message body's end, a BDAT chunk (both auth-only), a TLS record
	 * header (not parsed); the next chunk starts there. */
	if (kind == STG_K_PICKUP) {
		for (i = 0; i < chunk; i++) {
			if (i >= n)
				break;
			if (smtp_pickup_byte(s, x->buf[i]))
				return STG_R_PICKUP_NOT_TLS;
			stg_barrier();
		}
	} else if (kind == STG_K_BODY) {
		for (i = 0; i < chunk; i++) {
			if (i >= n || !s->body)
				break;
			reason = smtp_body_byte(s, x->buf[i]);
			if (reason)
				return reason;
			stg_barrier();
		}
	} else {
		for (i = 0; i < chunk; i++) {
			if (i >= n || smtp_done(s, c2s) || (auth && s->skip))
				break;
			reason = c2s ? smtp_client_byte(s, x->buf[i], up, auth)
				     : smtp_server_byte(s, x->buf[i], &x->ev);
			if (reason)
				return reason;
			stg_barrier();
		}
	}
	x->pos += i;
	return SMTP_OK;
}

/* 1 when the payload is judged to its end (or needs no more) */
static __always_inline int stg_scan_over(const struct stg_scan_ctx *x,
					 const struct smtp_state *s,
					 const int kind)
{
	return x->pos >= x->stop ||
	       (kind != STG_K_PICKUP && smtp_done(s, kind != STG_K_SRV));
}

/* After the last chunk, or a violation (@reason). */
static __always_inline int stg_scan_end(struct __sk_buff *skb,
					struct stg_scan_ctx *x,
					struct stg_conn *c,
					const struct stg_config *cfg,
					__u32 reason, const int c2s)
{
	if (!reason && c2s)
		reason = smtp_client_end(&c->smtp, &cfg->upgrade);
	if (!reason) {
		if (c2s)
			c->cli_nxt = x->end_seq;
		else
			c->srv_nxt = x->end_seq;
		if (x->ev & SMTP_EV_REFUSED)
			stg_count(STG_C_STARTTLS_REFUSED);
		if (c2s && c->smtp.phase == STG_TLS) {
			/* one-way: the client's hello upgrades */
			stg_count(STG_C_TLS_UPGRADES);
			stg_event(skb, &x->pkt, c, x->ingress, STG_EV_TLS,
				  STG_TLS_GO, 0);
		}
		return STG_PASS;
	}
	/* Acted on in a program of its own: the verifier then walks the
	 * reset once, not once for each byte that can leave the loop. */
	x->reason = reason;
	bpf_tail_call(skb, &jmp, STG_JMP_VIOLATION);
	/* Not reached unless the tail call failed: no RST then. */
	stg_count(STG_C_RST_FAILED);
	return stg_mark(skb, &x->pkt, c, cfg, reason, x->ingress) ? STG_PASS
								   : TC_ACT_SHOT;
}

/* What a scan program starts from. Returns 0 with all three set. */
static __always_inline int stg_scan_begin(struct stg_scan_ctx **x,
					  struct stg_config **cfg,
					  struct stg_conn **c)
{
	__u32 zero = 0;

	*x = bpf_map_lookup_elem(&scratch, &zero);
	*cfg = bpf_map_lookup_elem(&settings, &zero);
	if (!*x || !*cfg)
		return -1;
	*c = bpf_map_lookup_elem(&conns, &(*x)->pkt.key);
	if (!*c) {
		stg_count(STG_C_UNINSPECTABLE);
		return -1;
	}
	return 0;
}

/* Chained: one chunk per run. */
static __always_inline int stg_scan_chain(struct __sk_buff *skb,
					  const int kind)
{
	const int c2s = kind != STG_K_SRV;
	struct stg_scan_ctx *x;
	struct stg_config *cfg;
	struct stg_conn *c;
	__u32 reason;

	if (stg_scan_begin(&x, &cfg, &c))
		return TC_ACT_SHOT;
	reason = stg_scan_chunk(skb, x, &c->smtp, &cfg->upgrade, kind,
				kind == STG_K_CLI_AUTH ? STG_CHUNK_AUTH
						       : STG_CHUNK);
	if (!reason && !stg_scan_over(x, &c->smtp, kind)) {
		bpf_tail_call(skb, &jmp, c->smtp.body ? STG_JMP_BODY : x->slot);
		reason = STG_R_UNINSPECTABLE; /* out of tail calls */
	}
	return stg_scan_end(skb, x, c, cfg, reason, c2s);
}

/* A scan program: @fn (stg_scan_chain or stg_scan_loop) for @kind. */
#define STG_SCAN_PROG(name, fn, kind)                                      \
	SEC("tc") int name(struct __sk_buff *skb)                          \
	{                                                                  \
		return fn(skb, kind);                                      \
	}

STG_SCAN_PROG(stg_scan_cli, stg_scan_chain, STG_K_CLI);
STG_SCAN_PROG(stg_scan_cli_auth, stg_scan_chain, STG_K_CLI_AUTH);
STG_SCAN_PROG(stg_scan_body, stg_scan_chain, STG_K_BODY);
STG_SCAN_PROG(stg_scan_pickup, stg_scan_chain, STG_K_PICKUP);
STG_SCAN_PROG(stg_scan_srv, stg_scan_chain, STG_K_SRV);

/* With bpf_loop(): every chunk in one run. The verifier walks a
 * callback's loop with less room than a program's: smaller chunks. */
#define STG_LOOP_CHUNK 128

/* What the callbacks get. Unchanged by them (the verifier then needs to
 * walk a callback only once or twice): what they find goes to x->reason,
 * in map memory. */
struct stg_loop {
	struct __sk_buff *skb;
	struct stg_scan_ctx *x;
	struct smtp_state *s;
	const struct smtp_upgrade *up;
};

/* Returns 1 to stop: a violation, the payload's end, or (auth-only) where
 * a body starts or ends. */
static __always_inline long stg_loop_step(struct stg_loop *l, const int kind)
{
	struct stg_scan_ctx *x = l->x;

	x->reason = stg_scan_chunk(l->skb, x, l->s, l->up, kind,
				   STG_LOOP_CHUNK);
	return x->reason || stg_scan_over(x, l->s, kind) ||
	       (kind >= STG_K_CLI_AUTH && !l->s->body != (kind != STG_K_BODY));
}

static long stg_loop_cli(__u32 i __attribute__((unused)), void *l)
{
	return stg_loop_step(l, STG_K_CLI);
}

static long stg_loop_cli_auth(__u32 i __attribute__((unused)), void *l)
{
	return stg_loop_step(l, STG_K_CLI_AUTH);
}

static long stg_loop_body(__u32 i __attribute__((unused)), void *l)
{
	return stg_loop_step(l, STG_K_BODY);
}

static long stg_loop_srv(__u32 i __attribute__((unused)), void *l)
{
	return stg_loop_step(l, STG_K_SRV);
}

static long stg_loop_pickup(__u32 i __attribute__((unused)), void *l)
{
	return stg_loop_step(l, STG_K_PICKUP);
}

static __always_inline int stg_scan_loop(struct __sk_buff *skb,
					 const int kind)
{
	struct stg_loop l = { .skb = skb };
	const int c2s = kind != STG_K_SRV;
	struct stg_config *cfg;
	struct stg_conn *c;
	__u32 steps, reason = 0;

	if (stg_scan_begin(&l.x, &cfg, &c))
		return TC_ACT_SHOT;
	l.s = &c->smtp;
	l.up = &cfg->upgrade;
	l.x->reason = 0;
	/* Each step takes a chunk, or less where the reading changes (a
	 * BDAT chunk, the end of a body), and at least a byte. A client
	 * packet under auth-only may end a body and go on with commands (a
	 * body starts only after the server's 354). */
	steps = l.x->stop - l.x->pos;
	if (kind == STG_K_CLI_AUTH && l.s->body &&
	    bpf_loop(steps, stg_loop_body, &l, 0) < 0)
		reason = STG_R_UNINSPECTABLE;
	if (!reason && !l.x->reason && !stg_scan_over(l.x, l.s, kind) &&
	    bpf_loop(steps, kind == STG_K_SRV ? stg_loop_srv :
			    kind == STG_K_CLI ? stg_loop_cli :
			    kind == STG_K_PICKUP ? stg_loop_pickup :
						   stg_loop_cli_auth,
		     &l, 0) < 0)
		reason = STG_R_UNINSPECTABLE;
	if (!reason)
		reason = l.x->reason;
	if (!reason && !stg_scan_over(l.x, l.s, kind))
		reason = STG_R_UNINSPECTABLE;
	return stg_scan_end(skb, l.x, c, cfg, reason, c2s);
}

STG_SCAN_PROG(stg_scan_cli_loop, stg_scan_loop, STG_K_CLI);
STG_SCAN_PROG(stg_scan_cli_auth_loop, stg_scan_loop, STG_K_CLI_AUTH);
STG_SCAN_PROG(stg_scan_srv_loop, stg_scan_loop, STG_K_SRV);
STG_SCAN_PROG(stg_scan_pickup_loop, stg_scan_loop, STG_K_PICKUP);

SEC("tc")
int stg_violate(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct stg_scan_ctx *x = bpf_map_lookup_elem(&scratch, &zero);
	struct stg_config *cfg = bpf_map_lookup_elem(&settings, &zero);
	struct stg_conn *c;

	if (!x || !cfg)
		return TC_ACT_SHOT;
	c = bpf_map_lookup_elem(&conns, &x->pkt.key);
	if (!c)
		return TC_ACT_SHOT;
	if (x->pkt.c2s)
		x->reason = smtp_client_name(&c->smtp, x->reason);
	return stg_violation(skb, &x->pkt, c, cfg, x->reason, x->ingress);
}

SEC("tc")
int stg_ingress(struct __sk_buff *skb)
{
	return stg_guard(skb, 1);
}

SEC("tc")
int stg_egress(struct __sk_buff *skb)
{
	return stg_guard(skb, 0);
}
