/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the kernel side (bpf/starttls_guard.bpf.c) and the loader
 * (user/): map keys and values, enums of reasons and counters, limits.
 * Only __u8/__u16/__u32/__u64 so that both sides agree on the layout.
 */
#ifndef STARTTLS_GUARD_H
#define STARTTLS_GUARD_H

#include "smtp.h"

#define STG_VERSION "0.1.0"
#define STG_PIN_DIR "/sys/fs/bpf/starttls-guard"
#define STG_MAX_CONNS 65536	/* connections tracked (LRU) */
#define STG_MAX_HOSTS 16384	/* CIDR entries in the host map */
#define STG_MAX_IFACES 1024	/* interfaces attached to */
#define STG_PORT_WORDS 1024	/* 65536 ports, one bit each */

/* Payload is judged STG_CHUNK bytes per program run, chained by tail
 * calls (at most 32 on 5.10: one from the entry program to the header
 * check, one per chunk, one to act on a violation): a packet with more
 * unjudged payload than STG_MAX_SCAN before TLS is reset (fail closed). */
#ifndef STG_CHUNK
#define STG_CHUNK 512
#endif
#define STG_MAX_SCAN (STG_CHUNK * 30)
/* Under policy auth-only the client's commands are read in chunks half
 * as long (more to check per byte, the same room in the verifier). */
#define STG_CHUNK_AUTH (STG_CHUNK / 2)
#define STG_MAX_SCAN_AUTH (STG_CHUNK_AUTH * 30)
/* With bpf_loop() (5.17 on) one program run judges every chunk: the
 * limit is then far above any packet (GRO, TSO and BIG TCP included). */
#define STG_MAX_SCAN_LOOP (1U << 20)

/* Slots of the "jmp" program array: the payload scanners. */
enum stg_jmp {
	STG_JMP_CLI = 0,	/* stg_scan_cli: client bytes */
	STG_JMP_SRV = 1,	/* stg_scan_srv: server bytes */
	STG_JMP_CHECK = 2,	/* stg_check: headers, before the scan */
	STG_JMP_VIOLATION = 3,	/* stg_violate: a violation the scan found */
	STG_JMP_CLI_AUTH = 4,	/* client bytes under policy auth-only */
	STG_JMP_BODY = 5,	/* a message body's bytes (auth-only) */
	STG_JMP_PICKUP = 6,	/* client bytes of a connection picked up
				 * with bytes that are not text */
	STG_JMP_MAX,
};

/* What the host map (or the default) says about a connection. */
enum stg_action {
	STG_ACT_REQUIRE_TLS = 0,
	STG_ACT_DENY = 1,
	STG_ACT_EXEMPT = 2,
	STG_ACT_AUTH_ONLY = 3,	/* judged with policy auth-only */
};

enum stg_mode {
	STG_MODE_ENFORCE = 0,
	STG_MODE_MONITOR = 1,
	STG_MODE_OFF = 2,	/* detached: a copy left running (one that
				 * could not be reached) passes everything */
};

/* Why a connection was reset (or, in monitor mode, would have been).
 * The first values are enum smtp_verdict's violations. */
enum stg_reason {
	STG_R_NONE = 0,
	STG_R_PLAINTEXT_COMMAND = SMTP_V_PLAINTEXT_COMMAND,
	STG_R_STARTTLS_INJECTION = SMTP_V_STARTTLS_INJECTION,
	STG_R_NOT_TLS_AFTER_220 = SMTP_V_NOT_TLS_AFTER_220,
	STG_R_RESPONSE_INJECTION = SMTP_V_RESPONSE_INJECTION,
	STG_R_TLS_WITHOUT_GO_AHEAD = SMTP_V_TLS_WITHOUT_GO_AHEAD,
	STG_R_AFTER_REFUSED = SMTP_V_AFTER_REFUSED,
	STG_R_UNSOLICITED_REPLY = SMTP_V_UNSOLICITED_REPLY,
	STG_R_SERVER_NOT_TLS = SMTP_V_SERVER_NOT_TLS,
	STG_R_AMBIGUOUS_END = SMTP_V_AMBIGUOUS_END,
	STG_R_DATA_PIPELINING = SMTP_V_DATA_PIPELINING,
	STG_R_DENIED_HOST = SMTP_V_MAX,	/* host in the map with action deny */
	STG_R_UNINSPECTABLE,		/* payload that could not be judged: too
					 * much of it, or unreadable */
	STG_R_URGENT_DATA,		/* TCP urgent data before TLS */
	STG_R_PICKUP_NOT_TLS,		/* picked up with a TLS record, then
					 * text from either side */
	STG_R_MAX,
};

/* Per-CPU counters; the resets by reason follow STG_C_RESETS. */
enum stg_counter {
	STG_C_PACKETS = 0,	/* packets on guarded ports inspected */
	STG_C_CONNECTIONS,	/* connections tracked */
	STG_C_TLS_UPGRADES,	/* connections that reached TLS */
	STG_C_STARTTLS_REFUSED,	/* STARTTLS answered with other than 220 */
	STG_C_TLS_FAILED,	/* handshake record answered with other than
				 * one: plaintext rules again */
	STG_C_EXEMPT,		/* connections passed as exempt */
	STG_C_DENIED,		/* connections refused (deny action) */
	STG_C_RETRANSMITS,	/* already judged bytes passed again */
	STG_C_OUT_OF_ORDER,	/* segments beyond a gap dropped */
	STG_C_OUT_OF_WINDOW,	/* segments before the tracked start dropped */
	STG_C_SPOOFED,		/* server packets of a local server on ingress */
	STG_C_UNACCEPTABLE,	/* client segments the server would discard */
	STG_C_UNINSPECTABLE,	/* packets dropped unjudged: headers cut
				 * short or too deep to find the ports */
	STG_C_FRAGMENTS,	/* IP fragments of guarded connections dropped */
	STG_C_SYN_PAYLOADS,	/* SYNs with data (TCP Fast Open) judged */
	STG_C_BLOCKED_DROPS,	/* packets of reset connections dropped */
	STG_C_PICKUP_TLS,	/* picked up mid-stream with a TLS record */
	STG_C_PICKUP_PLAIN,	/* picked up mid-stream with plaintext: judged */
	STG_C_PICKUP_PASSED,	/* picked up and passed (--midstream pass) */
	STG_C_CLOSED,		/* entries removed at FIN/RST */
	STG_C_MONITOR_HITS,	/* violations passed in monitor mode */
	STG_C_RST_FAILED,	/* an RST could not be built or sent */
	STG_C_EVENTS_LOST,	/* events the ring buffer had no room for */
	STG_C_EVENTS_LIMITED,	/* events over the rate limit, not sent */
	STG_C_RESETS,		/* + enum stg_reason */
	STG_C_MAX = STG_C_RESETS + STG_R_MAX,
};

/* Configuration that changes at run time: the single entry of the
 * "config" array map. */
struct stg_config {
	__u32 mode;		/* enum stg_mode */
	__u32 default_action;	/* enum stg_action */
	__u32 flags;		/* STG_CFG_* */
	__u32 scanner;		/* the scan programs loaded: 1 with
				 * bpf_loop(), 0 chained (for status) */
	__u64 ports[STG_PORT_WORDS]; /* guarded server ports, a bitmap */
	__u64 tls_ports[STG_PORT_WORDS]; /* of those, implicit-TLS ports */
	__u64 auth_ports[STG_PORT_WORDS]; /* of those, policy auth-only */
	__u64 own_policy[STG_PORT_WORDS]; /* (loader only) ports given with
					   * a policy of their own */
	struct smtp_upgrade upgrade;	/* verbs taken as STARTTLS */
};

#define STG_CFG_NO_INBOUND 0x1	/* --direction outbound */
#define STG_CFG_NO_OUTBOUND 0x2	/* --direction inbound */
#define STG_CFG_MIDSTREAM_PASS 0x4 /* --midstream pass */
#define STG_CFG_ONE_WAY 0x8	/* --one-way: server packets not seen */
#define STG_CFG_AUTH_ONLY 0x10	/* (loader only) --policy auth-only: the
				 * policy of ports without their own */

/* A connection, normalised so that the server is the side on a guarded
 * port. IPv4 addresses are IPv4-mapped IPv6 (::ffff:a.b.c.d). Addresses in
 * network byte order, ports in host byte order. */
struct stg_conn_key {
	__u8 cli_addr[16];
	__u8 srv_addr[16];
	__u16 cli_port;
	__u16 srv_port;
};

struct stg_conn {
	struct smtp_state smtp;
	__u32 cli_nxt;		/* next client sequence number expected */
	__u32 srv_nxt;		/* next server sequence number expected */
	__u32 cli_base;		/* first client sequence number tracked */
	__u32 srv_base;		/* first server sequence number tracked */
	__u32 syn_seq;		/* a client SYN seen on the tuple since */
	__u32 cli_acked;	/* the highest ACK the client sent */
	__u32 flags;		/* STG_F_* */
	enum stg_reason reason;	/* why it was blocked or monitored */
	__u32 events;		/* events sent about it */
};

#define STG_F_CLI_UNKNOWN 0x1	/* picked up: next client byte not known yet */
#define STG_F_SRV_UNKNOWN 0x2	/* picked up: next server byte not known yet */
#define STG_F_SYN 0x4		/* syn_seq is set: a new connection may start */
#define STG_F_TFO 0x8		/* data on the SYN judged: the SYN-ACK tells
				 * whether the server took it */
#define STG_F_FIN_CLI 0x10	/* the client sent its FIN */
#define STG_F_FIN_SRV 0x20	/* the server sent its FIN */
#define STG_F_PICKUP_C2S 0x40	/* STG_PICKUP_TLS: the client's record
				 * came first, the server's is awaited */

/* Host map: an LPM trie of CIDRs, IPv4 as ::ffff:0:0/96 plus the prefix. */
struct stg_host_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct stg_host {
	__u32 action;		/* enum stg_action */
	__u32 prefixlen;	/* same as the key's: the longest match wins */
};

/* Where the guard is attached: the "ifaces" map, written and read by the
 * loader only. An ifindex means something only in its network namespace,
 * so the key names both. */
struct stg_iface_key {
	__u64 netns;		/* inode of the network namespace */
	__u32 ifindex;
	__u32 pad;
};

enum stg_tc_mode {
	STG_TC_TCX = 1,		/* TCX links, pinned as link_<netns>_<ifindex>_{in,eg} */
	STG_TC_CLSACT = 2,	/* cls_bpf filters under a clsact qdisc */
};

#define STG_TC_HANDLE 0x5354	/* "ST": our cls_bpf filters' handle */
#define STG_TC_PRIO 1

struct stg_iface {
	__u32 mode;		/* enum stg_tc_mode */
	__u32 qdisc_created;	/* clsact was created by us (removed with us) */
	char name[16];
};

/* Events: the "events" ring buffer carries one struct stg_event per
 * decision worth knowing. At most STG_EVENTS_PER_CONN about a connection,
 * and STG_EVENTS_PER_SEC a second from each CPU: a flood of connections
 * cannot drown the buffer (those held back are counted, as are those the
 * buffer had no room for). */
#define STG_EVENTS_SIZE (256 * 1024)	/* bytes of the ring buffer */
#define STG_EVENTS_PER_CONN 4
#define STG_EVENTS_PER_SEC 1000

enum stg_event_type {
	STG_EV_RESET = 1,	/* reset (reason) */
	STG_EV_MONITOR = 2,	/* a violation passed in monitor mode */
	STG_EV_DENIED = 3,	/* a denied host's connection refused */
	STG_EV_EXEMPT = 4,	/* an exempt host's connection passed */
	STG_EV_TLS = 5,		/* the connection reached TLS */
	STG_EV_MAX,
};

struct stg_event {
	__u64 time_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	struct stg_conn_key key;
	__u32 ifindex;		/* in the namespace of the interface */
	__u8 type;		/* enum stg_event_type */
	__u8 ingress;		/* 1 ingress, 0 egress */
	__u8 phase;		/* enum stg_phase before the decision */
	__u8 reason;		/* enum stg_reason */
	__u32 pad;
	__u64 verb[2];		/* a client command's violation: its verb as
				 * packed by smtp.h (never its argument) */
};

#endif /* STARTTLS_GUARD_H */
