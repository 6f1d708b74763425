/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the loader's parts share: the commands in starttls-guard.c, the
 * daemon (run.c), its configuration file (conf.c) and events (events.c). */
#ifndef STG_GUARD_H
#define STG_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "starttls_guard.h"

#define IF_NAMESIZE_CONF 16

struct starttls_guard_bpf;

extern const char *stg_pin_dir;
extern bool verbose;
extern const char *const counter_names[STG_C_RESETS];
extern const char *const reason_names[STG_R_MAX];
extern const char *const action_names[4];
/* tab[i], or "unknown" past its end or on a hole. */
#define STG_NAME(tab, i) \
	((i) < sizeof(tab) / sizeof(*(tab)) && (tab)[i] ? (tab)[i] : "unknown")
/* A connection's phase as events and replay name it. */
const char *stg_phase_name(unsigned int phase);

/* One line "starttls-guard: ..." on stderr; fail() returns 1. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A bad command line: one line naming @cmd's usage, exit 2. */
void usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Root, BTF, bpffs (mounted if @mount_bpffs): 0, 1 on an error, 2 when
 * there is no bpffs. */
int check_env(bool mount_bpffs);
/* A pinned map's fd, or -1 with "not attached" printed. */
int open_pinned(const char *name, int *fd);
/* A pinned object's fd (-1 when there is none), nothing printed */
int stg_pinned(const char *name);
/* The ARPHRD_* type of an interface of this namespace, -1 if unknown */
int stg_link_type(const char *ifname);
/* 1 when the packed verb is an SMTP command (or STARTTLS) */
bool stg_known_verb(const __u64 v[2]);

/* The options of attach, as given: each field -1 (or false) when not
 * given, so that what is not given keeps its value. The configuration
 * file sets the same fields (conf.c). */
struct stg_opts {
	__u64 ports[STG_PORT_WORDS];	/* STARTTLS ports given */
	__u64 pol_set[STG_PORT_WORDS];	/* ... with a policy of their own */
	__u64 auth_ports[STG_PORT_WORDS]; /* ... that policy auth-only */
	__u64 tls_ports[STG_PORT_WORDS]; /* implicit-TLS ports */
	__u64 upgrade[SMTP_UPGRADE_MAX][2];
	int nupgrade;
	bool any_port, any_tls_port, any_upgrade;
	int policy, one_way, mode, def, direction, midstream, scanner, want;
	__u32 max_conns;
};

void stg_opts_init(struct stg_opts *o);
/* The options of attach that shape the configuration (also replay's):
 * getopt_long() entries, their codes stg_opt_set()'s. */
#define STG_CONFIG_OPTIONS                                                  \
	{ "port", required_argument, NULL, 'p' },                          \
	{ "monitor", no_argument, NULL, 'm' },                             \
	{ "enforce", no_argument, NULL, 'e' },                             \
	{ "default", required_argument, NULL, 'd' },                       \
	{ "implicit-tls-port", required_argument, NULL, 'I' },             \
	{ "direction", required_argument, NULL, 'D' },                     \
	{ "midstream", required_argument, NULL, 'M' },                     \
	{ "max-connections", required_argument, NULL, 'C' },               \
	{ "scanner", required_argument, NULL, 'S' },                       \
	{ "policy", required_argument, NULL, 'P' },                        \
	{ "upgrade-verb", required_argument, NULL, 'U' },                  \
	{ "one-way", no_argument, NULL, 'O' },                             \
	{ "two-way", no_argument, NULL, 'W' }
/* Set option @opt (attach's short code: 'p' --port, 'P' --policy, ...)
 * to @arg. Returns 0, or -1 with what is wrong in @err. */
int stg_opt_set(struct stg_opts *o, int opt, const char *arg, char *err,
		size_t errlen);

/* Apply @o to @cfg (the running configuration, or the defaults): 0, or
 * -1 with what is wrong in @err (a port given both ways). */
int stg_make_config(const struct stg_opts *o, struct stg_config *cfg,
		    char *err, size_t errlen);
/* What is wrong with @o over the defaults, in @err: 0 or -1. */
int stg_check_opts(const struct stg_opts *o, char *err, size_t errlen);

/* The configuration a first attach starts from */
void stg_config_defaults(struct stg_config *cfg);
/* Load @skel (opened, maps set up) with scanner @want (enum stg_scanner).
 * Returns the scanner loaded, or -1 (printed). */
int stg_load(struct starttls_guard_bpf *skel, int want);

/* Load the guard (reusing the pinned maps), configure it and attach it
 * to interfaces @names (of this network namespace), swapping the program
 * on those attached before. Options not in @o keep the running values;
 * for the @daemon they take the defaults, and interfaces that vanish
 * meanwhile are skipped. Nothing is left half-done on an
 * error (printed; returns 1). With @keep, the loaded object is handed
 * over (for stg_attach_more()), else released. */
int stg_attach(const struct stg_opts *o, char *const *names, int n,
	       bool daemon, struct starttls_guard_bpf **keep);
/* Attach the programs of @skel to interface @name too (0, or 1 printed). */
int stg_attach_more(struct starttls_guard_bpf *skel, const char *name,
		    int want);
/* 1 when attached to interface @name of this namespace */
bool stg_attached(const char *name);
/* Forget the attachments whose device is gone; detach those of this
 * namespace not in @names. Returns how many are left. */
int stg_prune(char *const *names, int n);
/* Detach from every interface and remove the pins: 0 or 1 (printed). */
int stg_detach_all(bool force);
void stg_release(struct starttls_guard_bpf *skel);

/* Counters summed over CPUs; tracked connections, table size. 0 or -1. */
/* The entries of map @fd (whose keys are at most 64 bytes). */
__u64 stg_map_count(int fd);
int stg_read_counters(__u64 sum[STG_C_MAX], __u64 *tracked, __u32 *capacity);
/* The counters map @fd summed over CPUs into @sum: 0 or -1. */
int stg_sum_counters(int fd, __u64 sum[STG_C_MAX]);
/* As "stats" shows them (JSON: one object, no newline). */
void stg_print_counters(const __u64 sum[STG_C_MAX], __u64 tracked, bool json);

/* The daemon's configuration file (conf.c, starttls-guard.conf(5)). */
#define STG_CONF_PATH "/etc/starttls-guard/starttls-guard.conf"
#define STG_CONF_MAX_IFACES 64
#define STG_CONF_MAX_SIZE (4 << 20)	/* bytes: 16,384 hosts fit well */

struct stg_conf_host {
	struct stg_host_key key;
	__u32 action;
};

struct stg_conf {
	struct stg_opts opts;
	/* interface names, patterns (eth*) and "default-route" */
	char ifaces[STG_CONF_MAX_IFACES][IF_NAMESIZE_CONF];
	int nifaces;
	struct stg_conf_host *hosts;	/* the host map, all of it */
	int nhosts;
	char metrics[64];		/* ADDR:PORT, or "" */
	bool syslog, keep_attached, verbose;
};

/* Read @path into @c (stg_conf_free() after). 0, or -1 with "FILE:LINE:
 * reason" in @err. */
int stg_conf_load(const char *path, struct stg_conf *c, char *err,
		  size_t errlen);
void stg_conf_free(struct stg_conf *c);
/* Add host(s) @cidr with @action (STG_ACT_*) to @c's host map: 0, or -1
 * with the reason in @err (a bad CIDR, one given twice, too many). */
/* Write @c's hosts into the host map @fd: 0, or -1 (errno says why). */
int stg_conf_put_hosts(const struct stg_conf *c, int fd);
int stg_conf_add_host(struct stg_conf *c, const char *cidr, __u32 action,
		      char *err, size_t errlen);
/* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) as a socket address. 0 or -1. */
int stg_parse_listen(const char *s, void *sa, unsigned int *salen);

/* An address of a connection key as text, IPv4 unmapped. */
void stg_addr_format(const __u8 a[16], char *buf, size_t len);
/* A command's verb as the events hold it (@v), as text: "" for none,
 * "other" for what is not a known SMTP command. */
void stg_verb_format(const __u64 v[2], char out[SMTP_VERB_MAX + 1]);
/* An event as one line (JSON with @json), without a newline. */
void stg_event_format(const struct stg_event *e, bool json, char *buf,
		      size_t len);
int cmd_events(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif /* STG_GUARD_H */
