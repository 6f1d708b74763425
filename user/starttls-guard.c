// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * starttls-guard: the loader. Loads the TC program (embedded through the
 * skeleton), pins its maps under /sys/fs/bpf/starttls-guard/, attaches it
 * to interfaces, edits the host map and reads the counters.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cidr.h"
#include "guard.h"
#include "starttls_guard.h"
#include "jmp.h"
#include "tc.h"

#define BPFFS "/sys/fs/bpf"

bool verbose;

/* Where the maps and links are pinned: STG_PIN_DIR, or a directory of
 * bpffs named by $STARTTLS_GUARD_PIN_DIR (several guards side by side,
 * tests that must not touch a production guard). */
const char *stg_pin_dir = STG_PIN_DIR;

/* Names of enum stg_counter (below STG_C_RESETS) and enum stg_reason, as
 * shown by "stats" and used as JSON keys. */
const char *const counter_names[STG_C_RESETS] = {
	[STG_C_PACKETS] = "packets_inspected",
	[STG_C_CONNECTIONS] = "connections_seen",	/* entries made */
	[STG_C_TLS_UPGRADES] = "tls_upgrades",
	[STG_C_STARTTLS_REFUSED] = "starttls_refused",
	[STG_C_TLS_FAILED] = "tls_handshake_failed",
	[STG_C_EXEMPT] = "exempt_connections",
	[STG_C_DENIED] = "denied_connections",
	[STG_C_RETRANSMITS] = "retransmissions_passed",
	[STG_C_OUT_OF_ORDER] = "out_of_order_dropped",
	[STG_C_OUT_OF_WINDOW] = "out_of_window_dropped",
	[STG_C_SPOOFED] = "spoofed_server_dropped",
	[STG_C_UNACCEPTABLE] = "unacceptable_dropped",
	[STG_C_UNINSPECTABLE] = "uninspectable_dropped",
	[STG_C_FRAGMENTS] = "fragments_dropped",
	[STG_C_SYN_PAYLOADS] = "syn_payloads_judged",
	[STG_C_BLOCKED_DROPS] = "blocked_packets_dropped",
	[STG_C_PICKUP_TLS] = "pickup_tls",
	[STG_C_PICKUP_PLAIN] = "pickup_plaintext",
	[STG_C_PICKUP_PASSED] = "pickup_passed",
	[STG_C_CLOSED] = "connections_closed",
	[STG_C_MONITOR_HITS] = "monitor_violations",
	[STG_C_RST_FAILED] = "rst_failed",
	[STG_C_EVENTS_LOST] = "events_lost",
	[STG_C_EVENTS_LIMITED] = "events_limited",
};

const char *const reason_names[STG_R_MAX] = {
	[STG_R_NONE] = "none",
	[STG_R_PLAINTEXT_COMMAND] = "plaintext_command",
	[STG_R_STARTTLS_INJECTION] = "starttls_injection",
	[STG_R_NOT_TLS_AFTER_220] = "not_tls_after_220",
	[STG_R_RESPONSE_INJECTION] = "response_injection",
	[STG_R_TLS_WITHOUT_GO_AHEAD] = "tls_without_go_ahead",
	[STG_R_AFTER_REFUSED] = "plaintext_after_starttls_refused",
	[STG_R_UNSOLICITED_REPLY] = "unsolicited_reply",
	[STG_R_SERVER_NOT_TLS] = "server_not_tls",
	[STG_R_AMBIGUOUS_END] = "ambiguous_end_of_data",
	[STG_R_DATA_PIPELINING] = "data_pipelining",
	[STG_R_DENIED_HOST] = "denied_host",
	[STG_R_UNINSPECTABLE] = "uninspectable",
	[STG_R_URGENT_DATA] = "urgent_data",
	[STG_R_PICKUP_NOT_TLS] = "pickup_not_tls",
};

const char *const action_names[4] = {
	[STG_ACT_REQUIRE_TLS] = "require-tls",
	[STG_ACT_DENY] = "deny",
	[STG_ACT_EXEMPT] = "exempt",
	[STG_ACT_AUTH_ONLY] = "auth-only",
};

/* A usage error: one line saying what is wrong, exit 2. */
void usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "starttls-guard: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'starttls-guard %s%s--help')\n", cmd ? cmd : "",
		cmd ? " " : "");
	exit(2);
}

static bool is_help(const char *s)
{
	return !strcmp(s, "-h") || !strcmp(s, "--help");
}

/* Print @usage and return 0 when an argument asks for help. */
static bool help_asked(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++)
		if (is_help(argv[i])) {
			fputs(usage, stdout);
			return true;
		}
	return false;
}

static void vsay(const char *fmt, va_list ap)
{
	fputs("starttls-guard: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return 1;
}

/* Set around tc operations, whose expected refusals ("Exclusivity flag
 * on" for a clsact that exists) libbpf prints: we say what failed. */
static bool libbpf_quiet;

/* While loading, libbpf's warnings (a refused program's verifier log)
 * are kept, the last LOADLOG_MAX bytes, to end the error with. */
#define LOADLOG_MAX 65536
static char *loadlog;
static size_t loadlog_len;

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list args)
{
	if ((level == LIBBPF_DEBUG || libbpf_quiet) && !verbose)
		return 0;
	if (loadlog && !verbose) {
		char line[4096];
		int n = vsnprintf(line, sizeof(line), fmt, args);

		if (n < 0)
			return 0;
		if ((size_t)n >= sizeof(line))
			n = sizeof(line) - 1;
		if (loadlog_len + n > LOADLOG_MAX) {
			size_t drop = loadlog_len + n - LOADLOG_MAX;

			drop = drop > loadlog_len ? loadlog_len : drop;
			memmove(loadlog, loadlog + drop, loadlog_len - drop);
			loadlog_len -= drop;
		}
		memcpy(loadlog + loadlog_len, line, n);
		loadlog_len += n;
		return n;
	}
	return vfprintf(stderr, fmt, args);
}

/* --- environment --------------------------------------------------------- */

/* The parent of process @pid, 0 when unknown */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* "pid (comm) state ppid ...": comm may hold spaces and ')' */
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 1, " %*c %d", &ppid);
	fclose(f);
	return ppid;
}

/* Pins must outlive this process. In a mount namespace of its own (as
 * 'ip netns exec' makes, with a /sys of its own), the bpffs is not the
 * one the rest of the system sees, and what is pinned there goes away on
 * exit: the links with it, and a clsact filter would be left running
 * without its maps. So the nearest ancestor in another mount namespace,
 * if one can be seen, must see the same filesystem where the pins go. */
static int check_pin_fs(void)
{
	char dir[PATH_MAX], there[PATH_MAX + 32], ns[64];
	struct stat self, other, a, b;
	pid_t pid = getpid();

	snprintf(dir, sizeof(dir), "%s", stg_pin_dir);
	dirname(dir);
	if (stat("/proc/self/ns/mnt", &self) || stat(dir, &a))
		return 0;
	for (int depth = 0; depth < 64 && (pid = parent_of(pid)) > 0; depth++) {
		snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", pid);
		if (stat(ns, &other))
			return 0; /* cannot be seen: nothing to compare */
		if (other.st_ino == self.st_ino)
			continue;
		snprintf(there, sizeof(there), "/proc/%d/root%s", pid, dir);
		if (stat(there, &b) || a.st_dev != b.st_dev)
			return fail("%s here is not the one outside this mount "
				    "namespace (as 'ip netns exec' makes): pins "
				    "would vanish on exit; use 'nsenter "
				    "--net=/run/netns/NAME' instead",
				    dir);
		return 0;
	}
	return 0;
}

/* Root, BTF and a bpffs at /sys/fs/bpf (mounted here if @mount_bpffs).
 * Returns 0, 1 on an error, 2 when there is no bpffs (nothing attached);
 * the error is printed. */
int check_env(bool mount_bpffs)
{
	struct statfs st;

	if (geteuid() != 0)
		return fail("must be run as root (it loads BPF programs)");
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return fail("this kernel has no BTF (/sys/kernel/btf/vmlinux); "
			    "it needs CONFIG_DEBUG_INFO_BTF=y");
	if (check_pin_fs())
		return 1;
	if (statfs(BPFFS, &st) || st.f_type != BPF_FS_MAGIC) {
		if (!mount_bpffs) {
			fail("no bpffs at " BPFFS ": nothing is attached");
			return 2;
		}
		if (mount("bpf", BPFFS, "bpf", 0, NULL))
			return fail("couldn't mount bpffs at " BPFFS ": %s",
				    strerror(errno));
	}
	return 0;
}

/* Take the lock on the pin directory (created if @create). Returns an fd
 * to keep open, -ENOENT if there is no directory, or another -errno. */
static int lock_pin_dir(bool create)
{
	int fd;

	if (create && mkdir(stg_pin_dir, 0700) && errno != EEXIST)
		return -errno;
	fd = open(stg_pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return -errno;
	}
	return fd;
}

int stg_pinned(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", stg_pin_dir, name);
	return bpf_obj_get(path);
}

/* The kernel's description of map @fd (zeroed when it cannot be had) */
static struct bpf_map_info map_info(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		memset(&info, 0, sizeof(info));
	return info;
}

/* Open the pinned maps of an attached guard: 0 or an error printed. */
int open_pinned(const char *name, int *fd)
{
	*fd = stg_pinned(name);
	if (*fd < 0)
		return fail("not attached (no %s/%s); run 'starttls-guard "
			    "attach IFACE' first",
			    stg_pin_dir, name);
	return 0;
}

/* The inode of this process's network namespace: with the ifindex, it
 * names an interface. */
static __u64 current_netns(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) ? 0 : st.st_ino;
}

/* --- network namespaces -------------------------------------------------- */

/* An fd of the network namespace whose inode is @ino: one named under
 * /run/netns (its name then in @name, if given: else ""), or one a
 * process is in. -1 when none is found. */
static int open_netns(__u64 ino, char name[NAME_MAX + 1])
{
	static const char *const dirs[] = { "/run/netns", "/proc" };
	char path[PATH_MAX];
	int fd = -1;

	if (name)
		name[0] = '\0';
	for (unsigned int i = 0; fd < 0 && i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *e;
		struct stat st;

		while (d && fd < 0 && (e = readdir(d))) {
			if (e->d_name[0] == '.' ||
			    (i == 1 && (e->d_name[0] < '0' || e->d_name[0] > '9')))
				continue;
			snprintf(path, sizeof(path), "%s/%s%s", dirs[i],
				 e->d_name, i == 1 ? "/ns/net" : "");
			if (stat(path, &st) || st.st_ino != ino)
				continue;
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (i == 0 && name)
				snprintf(name, NAME_MAX + 1, "%s", e->d_name);
		}
		if (d)
			closedir(d);
	}
	return fd;
}

/* ", network namespace NAME" (its name under /run/netns, else its inode,
 * and whether a process is in it) */
static void print_netns(__u64 ino)
{
	char name[NAME_MAX + 1];
	int fd = open_netns(ino, name);

	if (name[0])
		printf(", network namespace %s", name);
	else
		printf(", network namespace %llu%s", (unsigned long long)ino,
		       fd < 0 ? " (not found: 'detach --force' forgets it)"
			      : "");
	if (fd >= 0)
		close(fd);
}

/* Enter the network namespace whose inode is @ino (tc objects can only
 * be reached from inside). Returns an fd to come back with leave_netns(),
 * or -1 when it cannot be found or entered. */
static int enter_netns(__u64 ino)
{
	int ns = open_netns(ino, NULL), self = -1;

	if (ns >= 0)
		self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self >= 0 && setns(ns, CLONE_NEWNET)) {
		close(self);
		self = -1;
	}
	if (ns >= 0)
		close(ns);
	return self;
}

static void leave_netns(int self)
{
	if (setns(self, CLONE_NEWNET)) {
		fail("couldn't return to this network namespace: %s",
		     strerror(errno));
		exit(1);
	}
	close(self);
}

/* --- attach -------------------------------------------------------------- */

static const char attach_usage[] =
	"Usage: starttls-guard attach IFACE... [options]\n"
	"Load the guard, pin its maps (under $STARTTLS_GUARD_PIN_DIR, or\n"
	STG_PIN_DIR "/) and attach it to ingress and egress\n"
	"of each IFACE.\n"
	"Run again to add interfaces, change options or upgrade: the program\n"
	"is swapped atomically on every interface it is attached to, live\n"
	"connections keep their state, and the options not given keep their\n"
	"current values (the defaults below on a first attach). The options\n"
	"apply to every interface.\n"
	"\n"
	"  -p, --port N[:POLICY]\n"
	"                       guard server port N: repeatable, the ports given\n"
	"                       replace the set (default 25). Guard ports where\n"
	"                       STARTTLS is spoken (25, 587). POLICY: as --policy,\n"
	"                       for this port\n"
	"      --policy P       encrypt (default): before TLS only EHLO, HELO,\n"
	"                       STARTTLS, NOOP, RSET, HELP, QUIT; auth-only: only\n"
	"                       AUTH is reset (as smtpd_tls_auth_only), mail may\n"
	"                       go in plaintext. For every port given without a\n"
	"                       policy of its own, now and in later attaches\n"
	"      --upgrade-verb V take verb V as STARTTLS too (Exchange's\n"
	"                       X-ANONYMOUSTLS): the same 220 and TLS checks.\n"
	"                       Up to 2, repeatable; 'none' removes them. Not\n"
	"                       an SMTP command of its own (MAIL, AUTH...)\n"
	"      --one-way        only the clients' packets pass here (asymmetric\n"
	"                       routing): STARTTLS then a TLS hello upgrades\n"
	"                       without the server's 220 (--two-way: the default)\n"
	"      --implicit-tls-port N\n"
	"                       guard port N where TLS starts at once (465): the\n"
	"                       client's first bytes must be its TLS hello.\n"
	"                       Repeatable, replaces the set; 'none' empties it\n"
	"      --direction D    judge inbound connections (their client's packets\n"
	"                       arrive on the interface), outbound ones (they leave\n"
	"                       through it) or both (default)\n"
	"      --midstream P    connections seen from their middle (begun before\n"
	"                       the attach, or evicted from a full table): judge\n"
	"                       (default: text under encrypt, STARTTLS included;\n"
	"                       bytes that are not text pass once the other side's\n"
	"                       are not either) or pass (all pass, counted: for a\n"
	"                       gentle roll-out)\n"
	"      --max-connections N\n"
	"                       size of the connection table, 256 to 16777216\n"
	"                       (default 65536; about 200 bytes each). The\n"
	"                       oldest entries are evicted when it is full. Set\n"
	"                       on the first attach: changing it needs a detach\n"
	"  -m, --monitor        count violations (and mark them in the conns\n"
	"                       map), reset nothing\n"
	"  -e, --enforce        reset violations (the default)\n"
	"  -d, --default ACTION for hosts not in the host map: require-tls\n"
	"                       (default), deny or exempt\n"
	"      --scanner S      how payload is read: auto (default: loop where\n"
	"                       the kernel has bpf_loop, 5.17 on, else chain),\n"
	"                       loop (packets of any size), chain (tail calls:\n"
	"                       a packet with more than 15360 bytes before TLS,\n"
	"                       7680 under auth-only, is reset)\n"
	"      --tc-mode MODE   auto (default: the mode an interface is already\n"
	"                       attached with, else TCX where the kernel has it,\n"
	"                       else clsact), tcx, clsact\n"
	"  -v, --verbose        show libbpf's debug output\n"
	"  -h, --help           this help\n";

/* A named value of an option. */
struct choice {
	const char *name;
	int value;
};

#define CHOICES(...) (const struct choice[]){ __VA_ARGS__, { NULL, 0 } }

/* The value named @arg among @c into *@v (0), else -1 with @err naming
 * @what and the names. */
static int choose(const char *what, const char *arg, const struct choice *c,
		  int *v, char *err, size_t errlen)
{
	char names[128] = "";
	size_t o = 0;

	for (int i = 0; c[i].name; i++) {
		if (!strcmp(arg, c[i].name)) {
			*v = c[i].value;
			return 0;
		}
		o += snprintf(names + o, sizeof(names) - o, "%s%s",
			      !i ? "" : c[i + 1].name ? ", " : " or ",
			      c[i].name);
	}
	snprintf(err, errlen, "bad %s '%s': expected %s", what, arg, names);
	return -1;
}

static const struct choice *const policies =
	CHOICES({ "encrypt", 0 }, { "auth-only", 1 });

/* 1 when the packed verb @v is an SMTP command a server carries out:
 * taken as STARTTLS, it would be passed. Events name no other verb (what
 * a client sends where a verb goes may be anything, a password too). */
bool stg_known_verb(const __u64 v[2])
{
	static const char *const cmds[] = {
		"EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY",
		"EXPN", "HELP", "NOOP", "QUIT", "AUTH", "STARTTLS", "ETRN",
		"ATRN", "TURN", "SEND", "SOML", "SAML", "XCLIENT", "XFORWARD",
		"LHLO", "XEXCH50", "X-EXPS", "X-LINK2STATE",
	};
	__u64 w[2];

	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(*cmds); i++)
		if (!smtp_pack_verb(cmds[i], w) && w[0] == v[0] && w[1] == v[1])
			return true;
	return false;
}

static int parse_port(const char *s)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -1;
	return v;
}

/* The ARPHRD_* type of interface @ifname, -1 when unknown. Asked of the
 * kernel rather than of /sys, which may belong to another network
 * namespace. */
int stg_link_type(const char *ifname)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), type;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	type = ioctl(fd, SIOCGIFHWADDR, &ifr) ? -1 : ifr.ifr_hwaddr.sa_family;
	close(fd);
	return type;
}

/* The interface's link type must carry Ethernet headers: the program
 * parses them (loopback has zeroed ones). */
static int check_link_type(const char *ifname)
{
	int type = stg_link_type(ifname);

	if (type >= 0 && type != ARPHRD_ETHER && type != ARPHRD_LOOPBACK)
		return fail("%s is not an Ethernet device (link type %d): "
			    "layer-3 devices (WireGuard, tun) are not supported",
			    ifname, type);
	return 0;
}

/* Point every map of the object at its pin, so that a second load reuses
 * the maps (and the connections) of the first. */
static int set_pins(struct bpf_object *obj)
{
	struct bpf_map *map;
	char path[128];

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map))
			continue; /* .rodata: set per load, never shared */
		snprintf(path, sizeof(path), "%s/%s", stg_pin_dir,
			 bpf_map__name(map));
		if (bpf_map__set_pin_path(map, path))
			return -1;
	}
	return 0;
}

/* Before the maps are reused: each pinned map must have the layout this
 * version gives it, else libbpf's refusal would name nothing useful. The
 * size of the connection table is taken from its pin unless @max_conns
 * asks for one. Returns 0 or 1 with the map and the field named. */
static int check_pins(struct bpf_object *obj, __u32 max_conns)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info;
		const char *field = NULL;
		__u32 pinned = 0, now = 0;
		int fd = bpf_map__is_internal(map) ? -1
						   : stg_pinned(bpf_map__name(map));

		if (fd < 0)
			continue;
		info = map_info(fd);
		close(fd);
		if (!info.type)
			continue;
		if (!strcmp(bpf_map__name(map), "conns") && !max_conns)
			bpf_map__set_max_entries(map, info.max_entries);
		if (info.type != bpf_map__type(map))
			field = "type", pinned = info.type, now = bpf_map__type(map);
		else if (info.key_size != bpf_map__key_size(map))
			field = "key size", pinned = info.key_size,
			now = bpf_map__key_size(map);
		else if (info.value_size != bpf_map__value_size(map))
			field = "value size", pinned = info.value_size,
			now = bpf_map__value_size(map);
		else if (info.max_entries != bpf_map__max_entries(map))
			field = "entries", pinned = info.max_entries,
			now = bpf_map__max_entries(map);
		if (field && max_conns && !strcmp(bpf_map__name(map), "conns") &&
		    !strcmp(field, "entries"))
			return fail("the connection table holds %u entries: "
				    "max-connections %u needs a detach first "
				    "(connections in it lose their state)",
				    pinned, now);
		if (field)
			return fail("pinned map %s/%s does not match this "
				    "version (%s %u, here %u): 'starttls-guard "
				    "detach' removes the guard and its state, "
				    "then attach again", stg_pin_dir,
				    bpf_map__name(map), field, pinned, now);
	}
	return 0;
}

/* Drop the record of an attachment whose device is gone or renamed, and
 * what is left of it (a TCX link is severed with its device). */
static void forget_iface(int ifmap, const struct stg_iface_key *k,
			 const struct stg_iface *cur)
{
	libbpf_quiet = true;
	stg_tc_detach(k, cur);
	libbpf_quiet = false;
	bpf_map_delete_elem(ifmap, k);
}

/* Swap the program on the interfaces attached before and not named now
 * (in their own namespaces): one version runs at a time, as the maps are
 * shared. Returns 0, or 1 when one could not be swapped (it runs the
 * previous program). */
static int swap_others(int ifmap, struct starttls_guard_bpf *skel,
		       const struct stg_iface_key *named, int nnamed)
{
	struct stg_iface_key keys[STG_MAX_IFACES], key, *prev = NULL;
	int n = 0, rc = 0;

	/* The keys first (records are deleted on the way), but the named */
	while (n < STG_MAX_IFACES && !bpf_map_get_next_key(ifmap, prev, &key)) {
		bool is_named = false;

		for (int i = 0; i < nnamed; i++)
			is_named |= !memcmp(&named[i], &key, sizeof(key));
		if (!is_named)
			keys[n++] = key;
		prev = &key;
	}
	for (int i = 0; i < n; i++) {
		const struct stg_iface_key *k = &keys[i];
		struct stg_iface cur, now;
		char name[IF_NAMESIZE];
		int self, err = -ENOENT;

		if (bpf_map_lookup_elem(ifmap, k, &cur))
			continue;
		self = enter_netns(k->netns);
		if (self >= 0 && !if_indextoname(k->ifindex, name)) {
			/* Gone (deleted, or moved to another namespace). */
			forget_iface(ifmap, k, &cur);
			leave_netns(self);
			printf("forgot %s: it is gone\n", cur.name);
			continue;
		}
		if (self >= 0) {
			if (strcmp(name, cur.name)) /* renamed */
				snprintf(cur.name, sizeof(cur.name), "%s", name);
			libbpf_quiet = true;
			err = stg_tc_attach(k, cur.name,
					    bpf_program__fd(skel->progs.stg_ingress),
					    bpf_program__fd(skel->progs.stg_egress),
					    STG_WANT_AUTO, &cur, &now);
			libbpf_quiet = false;
			leave_netns(self);
		}
		if (err) {
			rc = fail("couldn't swap the program on %s (network "
				  "namespace %llu): %s; it runs the previous one",
				  cur.name, (unsigned long long)k->netns,
				  strerror(-err));
			continue;
		}
		bpf_map_update_elem(ifmap, k, &now, BPF_ANY);
	}
	return rc;
}

static const __u64 ports_none[STG_PORT_WORDS];

void stg_opts_init(struct stg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->policy = o->one_way = o->mode = o->def = -1;
	o->direction = o->midstream = -1;
	o->scanner = STG_SCAN_AUTO;
	o->want = STG_WANT_AUTO;
}

#define bit_set(map, v) (((map)[(v) >> 6] >> ((v) & 63)) & 1)

int stg_opt_set(struct stg_opts *o, int opt, const char *arg, char *err,
		size_t errlen)
{
	int v;

#define BAD(...) return snprintf(err, errlen, __VA_ARGS__), -1
#define CHOOSE(field, what, ...)                                           \
	return choose(what, arg, __VA_ARGS__, &o->field, err, errlen)

	switch (opt) {
	case 'p': {
		char num[16];
		const char *colon = strchr(arg, ':');
		int pol = -1;

		snprintf(num, sizeof(num), "%.*s",
			 colon ? (int)(colon - arg) : (int)strlen(arg), arg);
		if (colon && choose("port policy", colon + 1, policies, &pol,
				    err, errlen))
			return -1;
		v = parse_port(num);
		if (v < 0)
			BAD("bad port '%s': expected 1-65535", arg);
		if (bit_set(o->ports, v) &&
		    (bit_set(o->pol_set, v) != (pol >= 0) ||
		     bit_set(o->auth_ports, v) != (pol > 0)))
			BAD("port %d given twice, with different policies", v);
		o->ports[v >> 6] |= 1ULL << (v & 63);
		if (pol >= 0) {
			o->pol_set[v >> 6] |= 1ULL << (v & 63);
			if (pol)
				o->auth_ports[v >> 6] |= 1ULL << (v & 63);
		}
		o->any_port = true;
		return 0;
	}
	case 'P':
		CHOOSE(policy, "policy", policies);
	case 'U':
		o->any_upgrade = true;
		if (!strcmp(arg, "none")) {
			memset(o->upgrade, 0, sizeof(o->upgrade));
			o->nupgrade = 0;
			return 0;
		}
		if (o->nupgrade >= SMTP_UPGRADE_MAX)
			BAD("at most %d upgrade verbs", SMTP_UPGRADE_MAX);
		if (smtp_pack_verb(arg, o->upgrade[o->nupgrade]))
			BAD("bad upgrade verb '%s': 1 to %d printable bytes, no "
			    "space", arg, SMTP_VERB_MAX);
		if (stg_known_verb(o->upgrade[o->nupgrade]))
			BAD("upgrade verb %s: an SMTP command of its own, which "
			    "the server would carry out", arg);
		for (int i = 0; i < o->nupgrade; i++)
			if (!memcmp(o->upgrade[i], o->upgrade[o->nupgrade],
				    sizeof(o->upgrade[i])))
				BAD("upgrade verb %s given twice", arg);
		o->nupgrade++;
		return 0;
	case 'O':
	case 'W':
		o->one_way = opt == 'O';
		return 0;
	case 'm':
	case 'e':
		if (o->mode >= 0 && o->mode != (opt == 'm'))
			BAD("--monitor and --enforce together");
		o->mode = opt == 'm' ? STG_MODE_MONITOR : STG_MODE_ENFORCE;
		return 0;
	case 'd':
		CHOOSE(def, "default action",
		       CHOICES({ "require-tls", STG_ACT_REQUIRE_TLS },
			       { "deny", STG_ACT_DENY },
			       { "exempt", STG_ACT_EXEMPT }));
	case 'I':
		o->any_tls_port = true;
		if (!strcmp(arg, "none"))
			return 0;
		v = parse_port(arg);
		if (v < 0)
			BAD("bad implicit-TLS port '%s': expected 1-65535 or "
			    "none", arg);
		o->tls_ports[v >> 6] |= 1ULL << (v & 63);
		return 0;
	case 'D':
		CHOOSE(direction, "direction",
		       CHOICES({ "inbound", STG_CFG_NO_OUTBOUND },
			       { "outbound", STG_CFG_NO_INBOUND },
			       { "both", 0 }));
	case 'C': {
		char *end;
		unsigned long n;

		errno = 0;
		n = strtoul(arg, &end, 10);
		if (errno || *end || *arg < '0' || *arg > '9' || n < 256 ||
		    n > 1UL << 24)
			BAD("bad max-connections '%s': expected 256 to "
			    "16777216", arg);
		o->max_conns = n;
		return 0;
	}
	case 'S':
		CHOOSE(scanner, "scanner",
		       CHOICES({ "auto", STG_SCAN_AUTO },
			       { "loop", STG_SCAN_LOOP },
			       { "chain", STG_SCAN_CHAIN }));
	case 'M':
		CHOOSE(midstream, "midstream",
		       CHOICES({ "judge", 0 }, { "pass", STG_CFG_MIDSTREAM_PASS }));
	case 'T':
		CHOOSE(want, "tc-mode",
		       CHOICES({ "auto", STG_WANT_AUTO }, { "tcx", STG_WANT_TCX },
			       { "clsact", STG_WANT_CLSACT }));
	}
	BAD("unknown option");
#undef BAD
#undef CHOOSE
}

/* The option getopt_long() stopped at: a long one as written, a short
 * one (perhaps inside "-xm") as "-x". */
static const char *bad_option(char **argv)
{
	static char s[3] = "-";

	if (optopt && strncmp(argv[optind - 1], "--", 2)) {
		s[1] = (char)optopt;
		return s;
	}
	return argv[optind - 1];
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		STG_CONFIG_OPTIONS,
		{ "tc-mode", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static struct stg_opts o;
	char err[256];
	int opt;

	stg_opts_init(&o);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":p:med:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = true;
			break;
		case 'h':
			fputs(attach_usage, stdout);
			return 0;
		case ':':
			usage_error("attach", "%s needs a value",
				    bad_option(argv));
			break;
		case '?':
			usage_error("attach", "unknown option '%s'",
				    bad_option(argv));
			break;
		default:
			if (stg_opt_set(&o, opt, optarg, err, sizeof(err)))
				usage_error("attach", "%s", err);
		}
	}
	if (optind >= argc)
		usage_error("attach", "no interface named");
	return stg_attach(&o, argv + optind, argc - optind, false, NULL);
}

/* What a first attach starts from */
void stg_config_defaults(struct stg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = STG_MODE_ENFORCE;
	cfg->default_action = STG_ACT_REQUIRE_TLS;
	cfg->ports[25 >> 6] |= 1ULL << (25 & 63);
}

int stg_make_config(const struct stg_opts *o, struct stg_config *cfg,
		    char *err, size_t errlen)
{
	/* Guarded: the STARTTLS ports and the implicit-TLS ones. A
	 * STARTTLS port's policy: its own (--port N:POLICY), else --policy
	 * (given now or before). */
	if (o->policy >= 0)
		cfg->flags = (cfg->flags & ~STG_CFG_AUTH_ONLY) |
			     (o->policy ? STG_CFG_AUTH_ONLY : 0);
	for (int w = 0; w < STG_PORT_WORDS; w++) {
		__u64 starttls = o->any_port ? o->ports[w]
					     : cfg->ports[w] & ~cfg->tls_ports[w];
		__u64 tls = o->any_tls_port ? o->tls_ports[w] : cfg->tls_ports[w];
		__u64 own = o->any_port ? o->pol_set[w] : cfg->own_policy[w];
		__u64 own_auth = o->any_port ? o->auth_ports[w]
					     : cfg->auth_ports[w] & own;

		if (starttls & tls) {
			snprintf(err, errlen, "port %d is given both as a "
				 "STARTTLS port and as an implicit-TLS port",
				 w * 64 + __builtin_ctzll(starttls & tls));
			return -1;
		}
		cfg->tls_ports[w] = tls;
		cfg->ports[w] = starttls | tls;
		cfg->own_policy[w] = own & starttls;
		cfg->auth_ports[w] = (own_auth & own & starttls) |
				     ((cfg->flags & STG_CFG_AUTH_ONLY) ?
					      starttls & ~own : 0);
	}
	if (o->any_upgrade)
		memcpy(cfg->upgrade.verb, o->upgrade, sizeof(o->upgrade));
	if (o->one_way >= 0)
		cfg->flags = (cfg->flags & ~STG_CFG_ONE_WAY) |
			     (o->one_way ? STG_CFG_ONE_WAY : 0);
	if (o->direction >= 0)
		cfg->flags = (cfg->flags & ~(STG_CFG_NO_INBOUND |
					     STG_CFG_NO_OUTBOUND)) | o->direction;
	if (o->midstream >= 0)
		cfg->flags = (cfg->flags & ~STG_CFG_MIDSTREAM_PASS) | o->midstream;
	if (o->mode >= 0)
		cfg->mode = o->mode;
	if (o->def >= 0)
		cfg->default_action = o->def;
	return 0;
}

int stg_check_opts(const struct stg_opts *o, char *err, size_t errlen)
{
	struct stg_config *cfg = malloc(sizeof(*cfg));
	int rc;

	if (!cfg)
		return snprintf(err, errlen, "out of memory"), -1;
	stg_config_defaults(cfg);
	rc = stg_make_config(o, cfg, err, errlen);
	free(cfg);
	return rc;
}

/* Attach the loaded programs to interface @k (@name), replacing what
 * runs there. Returns 0 with @added set when it was not attached
 * before, else -errno (printed). */
static int attach_iface(struct starttls_guard_bpf *skel,
			const struct stg_iface_key *k, const char *name,
			int want, bool *added)
{
	int ifmap = bpf_map__fd(skel->maps.ifaces), err;
	struct stg_iface cur, now;
	bool had = !bpf_map_lookup_elem(ifmap, k, &cur);

	if (had && strcmp(cur.name, name)) {
		/* The record is of a device that had this index (renamed,
		 * or gone and the index reused). */
		forget_iface(ifmap, k, &cur);
		had = false;
	}
	libbpf_quiet = true;
	err = stg_tc_attach(k, name, bpf_program__fd(skel->progs.stg_ingress),
			    bpf_program__fd(skel->progs.stg_egress), want,
			    had ? &cur : NULL, &now);
	libbpf_quiet = false;
	if (err)
		return err;
	*added = !had;
	bpf_map_update_elem(ifmap, k, &now, BPF_ANY);
	printf("attached to %s (%s)\n", name,
	       now.mode == STG_TC_TCX ? "tcx" : "clsact");
	return 0;
}

/* The key of interface @name of this namespace: 0, or 1 printed. */
static int iface_key(const char *name, struct stg_iface_key *k)
{
	k->netns = current_netns();
	k->pad = 0;
	if (strlen(name) >= IFNAMSIZ || !(k->ifindex = if_nametoindex(name)))
		return fail("no such interface: %s", name);
	return check_link_type(name);
}

int stg_attach_more(struct starttls_guard_bpf *skel, const char *name,
		    int want)
{
	struct stg_iface_key k;
	bool added;
	int lock, err;

	if (iface_key(name, &k))
		return 1;
	lock = lock_pin_dir(false);
	if (lock < 0)
		return fail("couldn't open %s: %s", stg_pin_dir, strerror(-lock));
	err = attach_iface(skel, &k, name, want, &added);
	close(lock);
	return err ? 1 : 0;
}

bool stg_attached(const char *name)
{
	struct stg_iface_key k = { .netns = current_netns(),
				   .ifindex = if_nametoindex(name) };
	int ifmap = stg_pinned("ifaces");
	struct stg_iface cur;
	bool yes = ifmap >= 0 && k.ifindex &&
		   !bpf_map_lookup_elem(ifmap, &k, &cur) && !strcmp(cur.name, name);

	if (ifmap >= 0)
		close(ifmap);
	return yes;
}

void stg_release(struct starttls_guard_bpf *skel)
{
	starttls_guard_bpf__destroy(skel);
}

/* The refusal of a load: the kernel's version, the program refused and
 * the end of the verifier's log (what a bug report needs). */
static void load_failed(int err, int scanner)
{
	const char *log = loadlog ? loadlog : "", *begin, *end, *prog;
	struct utsname u = { 0 };
	char name[64] = "";
	int lines = 0;

	uname(&u);
	/* libbpf: "prog 'NAME': -- BEGIN PROG LOAD LOG --\n...\n-- END
	 * PROG LOAD LOG --": the last such block */
	begin = NULL;
	for (const char *p = log; (p = strstr(p, "-- BEGIN PROG LOAD LOG --"));
	     p++)
		begin = p;
	prog = begin ? begin : log;
	while (prog > log && strncmp(prog, "prog '", 6))
		prog--;
	if (!strncmp(prog, "prog '", 6))
		sscanf(prog + 6, "%63[^']", name);
	fail("couldn't load the BPF program%s%s on Linux %s (%s): %s%s",
	     *name ? " " : "", name, u.release, u.machine, strerror(-err),
	     begin ? "; the end of the verifier's log (-v shows all of it):"
		   : " (run with -v for libbpf's log)");
	if (begin && (begin = strchr(begin, '\n'))) {
		const char *from;

		end = strstr(begin, "-- END PROG LOAD LOG --");
		if (!end)
			end = log + strlen(log);
		/* its last 12 lines: back from the newline that ends the
		 * last one to the newline before the twelfth from the end */
		for (from = end - 1; from > begin && lines < 12;)
			lines += *--from == '\n';
		fprintf(stderr, "%.*s", (int)(end - from - 1), from + 1);
	}
	if (scanner == STG_SCAN_LOOP && !stg_has_loop())
		say("--scanner loop needs bpf_loop(), which came in Linux 5.17: "
		    "--scanner auto or chain works here");
}

/* Load @skel with the scanner @want (auto: bpf_loop where the kernel has
 * it). Returns the scanner loaded, or -1 (printed). */
int stg_load(struct starttls_guard_bpf *skel, int want)
{
	int scanner, err;

	scanner = stg_pick_scanner(skel, want);
	loadlog = calloc(1, LOADLOG_MAX + 1);
	loadlog_len = 0;
	err = starttls_guard_bpf__load(skel);
	if (err == -EPERM)
		fail("couldn't load the BPF program: the kernel refused bpf() "
		     "(it needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, and a "
		     "seccomp profile that allows bpf(): in a container, see "
		     "the README's Kubernetes notes)");
	else if (err)
		load_failed(err, scanner);
	free(loadlog);
	loadlog = NULL;
	return err ? -1 : scanner;
}

int stg_attach(const struct stg_opts *o, char *const *names, int nifs,
	       bool daemon, struct starttls_guard_bpf **keep)
{
	struct stg_config cfg;
	enum stg_scanner scanner = o->scanner;
	char why[128];
	struct starttls_guard_bpf *skel = NULL;
	int *done = NULL, lock = -1, rc = 1, err, ifmap;
	struct stg_iface_key *ifk = NULL;
	struct stg_config old_cfg;
	bool had_cfg = false;
	__u32 zero = 0;

	ifk = calloc(nifs + 1, sizeof(*ifk));
	done = calloc(nifs + 1, sizeof(*done));
	if (!ifk || !done)
		goto out;
	/* (For the daemon, an interface gone meanwhile is skipped: it
	 * follows interfaces as they come and go.) */
	for (int i = 0; i < nifs; i++)
		if (iface_key(names[i], &ifk[i]) &&
		    (!daemon || if_nametoindex(names[i])))
			goto out;
	if (check_env(true))
		goto out;
	lock = lock_pin_dir(true);
	if (lock < 0) {
		fail("couldn't create %s: %s", stg_pin_dir, strerror(-lock));
		goto out;
	}
	{
		struct statfs st;

		if (fstatfs(lock, &st) || st.f_type != BPF_FS_MAGIC) {
			fail("%s is not on a bpf filesystem (bpffs): pins need "
			     "one", stg_pin_dir);
			rmdir(stg_pin_dir); /* if made here (and so empty) */
			goto out;
		}
	}

	skel = starttls_guard_bpf__open();
	if (!skel || set_pins(skel->obj)) {
		fail("couldn't open the BPF object: %s", strerror(errno));
		goto out;
	}
	if (o->max_conns)
		bpf_map__set_max_entries(skel->maps.conns, o->max_conns);
	if (check_pins(skel->obj, o->max_conns))
		goto out;
	scanner = stg_load(skel, scanner);
	if (scanner < 0)
		goto out;

	/* Config first, then the scanners, then the hooks: a packet never
	 * meets a half-configured guard. The old config comes back if an
	 * interface cannot be attached. */
	had_cfg = !bpf_map_lookup_elem(bpf_map__fd(skel->maps.settings), &zero,
				       &old_cfg);
	/* Options not given keep their values. A new map holds zeros (no
	 * port at all): the defaults then. */
	if (!daemon && had_cfg && old_cfg.mode != STG_MODE_OFF &&
	    memcmp(old_cfg.ports, ports_none, sizeof(ports_none)))
		cfg = old_cfg;
	else
		stg_config_defaults(&cfg);
	if (stg_make_config(o, &cfg, why, sizeof(why))) {
		fail("%s", why);
		goto out;
	}
	if (cfg.flags & STG_CFG_ONE_WAY) {
		bool auth = cfg.flags & STG_CFG_AUTH_ONLY;

		for (int w = 0; w < STG_PORT_WORDS && !auth; w++)
			auth = cfg.auth_ports[w];
		if (auth)
			say("note: with --one-way the server's 354 is not seen, "
			    "so auth-only ports and hosts are judged under "
			    "encrypt");
	}
	cfg.scanner = scanner;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.settings), &zero, &cfg,
				BPF_ANY)) {
		fail("couldn't write the configuration: %s", strerror(errno));
		goto out;
	}
	err = stg_fill_jmp(skel);
	if (err) {
		fail("couldn't install the payload scanners: %s",
		     strerror(-err));
		goto out;
	}

	ifmap = bpf_map__fd(skel->maps.ifaces);
	for (int i = 0; i < nifs; i++) {
		bool added;

		if (daemon && (!ifk[i].ifindex ||
			      if_nametoindex(names[i]) != ifk[i].ifindex))
			continue; /* gone */
		err = attach_iface(skel, &ifk[i], names[i], o->want, &added);
		if (err && daemon && if_nametoindex(names[i]) != ifk[i].ifindex)
			continue; /* gone while attaching */
		if (err)
			goto undo;
		done[i] = added;
	}
	rc = swap_others(ifmap, skel, ifk, nifs);
	goto out;
undo:
	/* Leave nothing half-attached: undo the interfaces this run added,
	 * and put the configuration back. */
	libbpf_quiet = true;
	if (had_cfg)
		bpf_map_update_elem(bpf_map__fd(skel->maps.settings), &zero,
				    &old_cfg, BPF_ANY);
	for (int i = 0; i < nifs; i++) {
		struct stg_iface cur;

		if (!done[i] || bpf_map_lookup_elem(ifmap, &ifk[i], &cur))
			continue;
		stg_tc_detach(&ifk[i], &cur);
		bpf_map_delete_elem(ifmap, &ifk[i]);
		printf("undid the attachment to %s\n", cur.name);
	}
	libbpf_quiet = false;
out:
	if (rc && skel && lock >= 0) {
		struct stg_iface_key k;

		/* After a failure: a load that failed pinned nothing (the
		 * directory goes if empty: pins of a running guard stay); a
		 * guard attached nowhere keeps no pins. */
		if (!bpf_map__is_pinned(skel->maps.ifaces)) {
			rmdir(stg_pin_dir);
		} else if (bpf_map_get_next_key(bpf_map__fd(skel->maps.ifaces),
						NULL, &k)) {
			bpf_object__unpin_maps(skel->obj, NULL);
			rmdir(stg_pin_dir);
		}
	}
	if (!rc && keep)
		*keep = skel;
	else
		starttls_guard_bpf__destroy(skel);
	if (lock >= 0)
		close(lock);
	free(ifk);
	free(done);
	return rc;
}

/* --- detach -------------------------------------------------------------- */

/* Remove the pins attach makes: the program's maps (named as in @obj)
 * TCX links and the daemon's lock. Nothing else in the directory is
 * touched. */
static void unpin_ours(const struct bpf_object *obj)
{
	DIR *dir = opendir(stg_pin_dir);
	struct bpf_map *map;
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		bool ours = !strncmp(e->d_name, "link_", 5);

		bpf_object__for_each_map(map, obj)
			ours |= !strcmp(e->d_name, bpf_map__name(map));
		if (ours)
			unlinkat(dirfd(dir), e->d_name, 0);
		else if (!strcmp(e->d_name, "run")) /* the daemon's lock */
			unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR);
	}
	if (dir)
		closedir(dir);
}

static const char detach_usage[] =
	"Usage: starttls-guard detach [IFACE...] [--force]\n"
	"Detach the guard from each IFACE of this network namespace; with no\n"
	"IFACE, from every interface it is attached to. When no interface is\n"
	"left, remove the pinned maps and their directory ($STARTTLS_GUARD_PIN_DIR\n"
	"or " STG_PIN_DIR "/). Exits 0 when nothing was attached.\n"
	"\n"
	"A clsact attachment in another network namespace is removed from\n"
	"inside it (found under /run/netns or through a process in it).\n"
	"\n"
	"  --force   forget attachments whose network namespace cannot be\n"
	"            found; a copy left running there passes all traffic\n";

/* Detach @k; a clsact attachment of another namespace from inside it.
 * One whose namespace cannot be found is only forgotten, with @force.
 * Returns 0 when done. */
static int detach_one(int ifmap, const struct stg_iface_key *k,
		      const struct stg_iface *cur, __u64 netns, bool force)
{
	int err = 0;

	libbpf_quiet = true;
	if (cur->mode == STG_TC_CLSACT && k->netns != netns) {
		int self = enter_netns(k->netns);

		err = self < 0;
		if (self >= 0) {
			stg_tc_detach(k, cur);
			leave_netns(self);
		}
	} else {
		stg_tc_detach(k, cur);
	}
	libbpf_quiet = false;
	if (err && !force)
		return fail("%s is attached with clsact in network namespace "
			    "%llu, which is not found under /run/netns nor "
			    "held by a process: 'detach --force' forgets it",
			    cur->name, (unsigned long long)k->netns);
	bpf_map_delete_elem(ifmap, k);
	printf("%s %s\n", err ? "forgot" : "detached from", cur->name);
	return 0;
}

/* When attached nowhere: the pins go (the maps with them). A copy still
 * attached where it could not be reached would be left without its
 * scanners: it is told to pass everything. Returns 0 or 1 printed. */
static int unpin_if_unused(int ifmap)
{
	struct stg_iface_key next;
	struct starttls_guard_bpf *o;
	int settings, rc = 0;
	__u32 zero = 0, size, *off;

	if (ifmap >= 0 && !bpf_map_get_next_key(ifmap, NULL, &next))
		return 0;
	o = starttls_guard_bpf__open();
	settings = stg_pinned("settings");
	/* The mode leads the configuration in every version: the value is
	 * written at the pinned map's own size. */
	size = settings >= 0 ? map_info(settings).value_size : 0;
	if (size >= sizeof(*off) && (off = calloc(1, size))) {
		*off = STG_MODE_OFF;
		bpf_map_update_elem(settings, &zero, off, BPF_ANY);
		free(off);
	}
	if (settings >= 0)
		close(settings);
	if (o)
		unpin_ours(o->obj);
	starttls_guard_bpf__destroy(o);
	if (rmdir(stg_pin_dir) && errno != ENOENT)
		rc = fail("couldn't remove %s: %s", stg_pin_dir,
			  strerror(errno));
	return rc;
}

/* Detach from every interface (TCX links can be closed from any
 * namespace, clsact filters only from their own). */
static int detach_every(int ifmap, bool force)
{
	struct stg_iface_key key, *prev = NULL;
	__u64 netns = current_netns();
	int rc = 0;

	while (ifmap >= 0 && !bpf_map_get_next_key(ifmap, prev, &key)) {
		struct stg_iface cur;

		if (!bpf_map_lookup_elem(ifmap, &key, &cur) &&
		    detach_one(ifmap, &key, &cur, netns, force)) {
			rc = 1;
			prev = &key; /* kept: go on after it */
			continue;
		}
		prev = NULL;
	}
	return rc;
}

int stg_detach_all(bool force)
{
	int ifmap, lock, rc;

	lock = lock_pin_dir(false);
	if (lock == -ENOENT)
		return 0;
	if (lock < 0)
		return fail("couldn't open %s: %s", stg_pin_dir, strerror(-lock));
	ifmap = stg_pinned("ifaces");
	rc = detach_every(ifmap, force);
	rc |= unpin_if_unused(ifmap);
	if (ifmap >= 0)
		close(ifmap);
	close(lock);
	return rc;
}

int stg_prune(char *const *names, int n)
{
	struct stg_iface_key keys[STG_MAX_IFACES], key, *prev = NULL;
	__u64 netns = current_netns();
	int ifmap, lock, nkeys = 0, left = 0;

	lock = lock_pin_dir(false);
	if (lock < 0)
		return 0;
	ifmap = stg_pinned("ifaces");
	while (ifmap >= 0 && nkeys < STG_MAX_IFACES &&
	       !bpf_map_get_next_key(ifmap, prev, &key)) {
		keys[nkeys++] = key;
		prev = &keys[nkeys - 1];
	}
	for (int i = 0; i < nkeys; i++) {
		struct stg_iface cur;
		char name[IF_NAMESIZE];
		bool wanted = false;

		if (bpf_map_lookup_elem(ifmap, &keys[i], &cur))
			continue;
		if (keys[i].netns != netns) {
			left++;
			continue;
		}
		if (!if_indextoname(keys[i].ifindex, name) ||
		    strcmp(name, cur.name)) {
			forget_iface(ifmap, &keys[i], &cur);
			printf("forgot %s: it is gone\n", cur.name);
			continue;
		}
		for (int j = 0; j < n; j++)
			wanted |= !strcmp(names[j], name);
		if (!wanted) {
			detach_one(ifmap, &keys[i], &cur, netns, false);
			continue;
		}
		left++;
	}
	if (ifmap >= 0)
		close(ifmap);
	close(lock);
	return left;
}

static int cmd_detach(int argc, char **argv)
{
	__u64 netns = current_netns();
	int ifmap, lock, rc = 0, names = 0;
	bool force = false;

	if (help_asked(argc, argv, detach_usage))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (argv[i][0] == '-')
			usage_error("detach", "unknown option '%s'", argv[i]);
		else
			names++;
	}
	rc = check_env(false);
	if (rc)
		return rc == 2 ? 0 : 1; /* no bpffs: nothing attached */
	lock = lock_pin_dir(false);
	if (lock == -ENOENT) {
		printf("not attached\n");
		return 0;
	}
	if (lock < 0)
		return fail("couldn't open %s: %s", stg_pin_dir, strerror(-lock));
	ifmap = stg_pinned("ifaces");
	for (int i = 1; ifmap >= 0 && i < argc; i++) {
		struct stg_iface_key k = { .netns = netns,
					   .ifindex = if_nametoindex(argv[i]) };
		struct stg_iface cur;

		if (argv[i][0] == '-')
			continue;
		if (!k.ifindex || bpf_map_lookup_elem(ifmap, &k, &cur)) {
			printf("not attached to %s in this network namespace\n",
			       argv[i]);
			continue;
		}
		detach_one(ifmap, &k, &cur, netns, force);
	}
	if (!names)
		rc = detach_every(ifmap, force);
	rc |= unpin_if_unused(ifmap);
	if (ifmap >= 0)
		close(ifmap);
	close(lock);
	return rc;
}

/* --- status -------------------------------------------------------------- */

static int read_config(struct stg_config *cfg)
{
	__u32 zero = 0;
	int fd, err;

	if (open_pinned("settings", &fd))
		return 1;
	if (map_info(fd).value_size != sizeof(*cfg)) {
		close(fd);
		return fail("the attached guard is of another version (its "
			    "settings map differs): 'starttls-guard detach', "
			    "then attach with this one");
	}
	err = bpf_map_lookup_elem(fd, &zero, cfg);
	close(fd);
	if (err)
		return fail("couldn't read the configuration: %s",
			    strerror(errno));
	return 0;
}

static const char status_usage[] =
	"Usage: starttls-guard status\n"
	"Show where the guard is attached and how it is configured.\n";

static int cmd_status(int argc, char **argv)
{
	struct stg_iface_key key, *prev = NULL;
	__u64 netns = current_netns();
	struct stg_iface_key warn[16];
	struct stg_iface warn_it[16];
	struct stg_config cfg;
	int ifmap, conns, nwarn = 0;

	if (help_asked(argc, argv, status_usage))
		return 0;
	if (argc > 1)
		usage_error("status", "unexpected argument '%s'", argv[1]);
	if (check_env(false) || read_config(&cfg) || open_pinned("ifaces", &ifmap))
		return 1;
	printf("mode:            %s\n",
	       cfg.mode == STG_MODE_MONITOR ? "monitor" : "enforce");
	printf("policy:          %s (ports without their own)\n",
	       cfg.flags & STG_CFG_AUTH_ONLY ? "auth-only" : "encrypt");
	printf("default action:  %s\n", action_names[cfg.default_action % 4]);
	printf("ports:          ");
	for (int p = 1; p < 65536; p++)
		if ((cfg.ports[p >> 6] >> (p & 63)) & 1)
			printf(" %d%s", p,
			       (cfg.tls_ports[p >> 6] >> (p & 63)) & 1 ?
				       " (implicit TLS)" :
			       (cfg.auth_ports[p >> 6] >> (p & 63)) & 1 ?
				       " (auth-only)" : "");
	printf("\nupgrade verbs:   STARTTLS");
	for (int i = 0; i < SMTP_UPGRADE_MAX; i++) {
		char w[SMTP_VERB_MAX + 1] = "";

		for (int b = 0; b < SMTP_VERB_MAX; b++)
			w[b] = cfg.upgrade.verb[i][b / 8] >> (8 * (b % 8));
		if (*w)
			printf(" %s", w);
	}
	printf("\none-way:         %s",
	       cfg.flags & STG_CFG_ONE_WAY ? "yes (server packets not seen)" : "no");
	printf("\ndirection:       %s\n",
	       cfg.flags & STG_CFG_NO_INBOUND	 ? "outbound" :
	       cfg.flags & STG_CFG_NO_OUTBOUND ? "inbound" : "both");
	printf("midstream:       %s\n",
	       cfg.flags & STG_CFG_MIDSTREAM_PASS ? "pass" : "judge");
	if (cfg.scanner == STG_SCAN_LOOP)
		printf("scanner:         bpf_loop (packets of any size)\n");
	else
		printf("scanner:         tail calls (%u bytes a packet before "
		       "TLS, %u under auth-only%s)\n", STG_MAX_SCAN,
		       STG_MAX_SCAN_AUTH,
		       stg_has_loop() ? "" : "; no bpf_loop in this kernel");
	printf("interfaces:     ");
	while (!bpf_map_get_next_key(ifmap, prev, &key)) {
		struct stg_iface it;

		if (!bpf_map_lookup_elem(ifmap, &key, &it)) {
			printf(" %s (%s", it.name,
			       it.mode == STG_TC_TCX ? "tcx" : "clsact");
			if (key.netns != netns)
				print_netns(key.netns);
			printf(")");
			if (key.netns == netns && nwarn < 16) {
				warn_it[nwarn] = it;
				warn[nwarn++] = key;
			}
		}
		prev = &key;
	}
	close(ifmap);
	if (!open_pinned("conns", &conns)) {
		printf("\nconnections:     %llu tracked, room for %u\n",
		       (unsigned long long)stg_map_count(conns),
		       map_info(conns).max_entries);
		close(conns);
	}
	/* Programs that run first may pass traffic the guard never sees. */
	for (int i = 0; i < nwarn; i++) {
		char buf[1024];

		for (int in = 1; in >= 0; in--)
			if (stg_tc_ahead(&warn[i], &warn_it[i], in, buf,
					 sizeof(buf)))
				printf("warning: on %s %s, before the guard: %s; "
				       "one that ends with a verdict passes "
				       "traffic unjudged\n", warn_it[i].name,
				       in ? "ingress" : "egress", buf);
	}
	return 0;
}

/* --- allow --------------------------------------------------------------- */

static const char allow_usage[] =
	"Usage: starttls-guard allow add CIDR [--deny|--auth-only]\n"
	"       starttls-guard allow del CIDR\n"
	"       starttls-guard allow list\n"
	"Edit the host map live. A connection whose client or server is in a\n"
	"CIDR gets its action (the longest prefix wins): 'add' makes it exempt\n"
	"(plaintext allowed), 'add --deny' refuses it with a reset at its SYN,\n"
	"'add --auth-only' judges it with policy auth-only (only AUTH before\n"
	"TLS is reset).\n"
	"Changes apply to connections that start afterwards.\n";

static int cmd_allow(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "", *cidr = NULL, *err;
	struct stg_host_key k;
	int action = STG_ACT_EXEMPT, fd, rc = 0;

	if (help_asked(argc, argv, allow_usage))
		return 0;
	for (int i = 2; i < argc; i++) {
		int a = !strcmp(argv[i], "--deny") ? STG_ACT_DENY :
			!strcmp(argv[i], "--auth-only") ? STG_ACT_AUTH_ONLY : -1;

		if (a >= 0 && !strcmp(cmd, "add")) {
			if (action != STG_ACT_EXEMPT && action != a)
				usage_error("allow", "--deny and --auth-only "
					    "together");
			action = a;
		} else if (argv[i][0] == '-' && argv[i][1])
			usage_error("allow", "unknown option '%s'", argv[i]);
		else if (cidr)
			usage_error("allow", "unexpected argument '%s'", argv[i]);
		else
			cidr = argv[i];
	}
	if (!strcmp(cmd, "list")) {
		struct stg_host_key key, *prev = NULL;
		char buf[64];

		if (cidr)
			usage_error("allow", "'list' takes no argument");
		if (check_env(false) || open_pinned("hosts", &fd))
			return 1;
		while (!bpf_map_get_next_key(fd, prev, &key)) {
			struct stg_host h;

			if (!bpf_map_lookup_elem(fd, &key, &h)) {
				stg_cidr_format(&key, buf, sizeof(buf));
				printf("%-44s %s\n", buf,
				       action_names[h.action % 4]);
			}
			prev = &key;
		}
		close(fd);
		return 0;
	}
	if (strcmp(cmd, "add") && strcmp(cmd, "del"))
		usage_error("allow", "expected add, del or list");
	if (!cidr)
		usage_error("allow", "%s needs a CIDR", cmd);
	err = stg_cidr_parse(cidr, &k);
	if (err)
		usage_error("allow", "bad CIDR '%s': %s (expected e.g. "
			    "192.0.2.0/24, 192.0.2.10 or 2001:db8::/32)", cidr,
			    err);
	if (check_env(false) || open_pinned("hosts", &fd))
		return 1;
	if (!strcmp(cmd, "add")) {
		struct stg_host h = {
			.action = action,
			.prefixlen = k.prefixlen,
		};

		if (bpf_map_update_elem(fd, &k, &h, BPF_ANY))
			rc = fail("couldn't add %s: %s", cidr, strerror(errno));
		else if (k.prefixlen == 0 || k.prefixlen == 96)
			fprintf(stderr, "starttls-guard: note: %s covers every "
				"%s address (and so every connection)\n", cidr,
				k.prefixlen ? "IPv4" : "IPv6 and IPv4");
	} else if (bpf_map_delete_elem(fd, &k)) {
		rc = fail("couldn't delete %s: %s", cidr,
			  errno == ENOENT ? "not in the host map"
					  : strerror(errno));
	}
	close(fd);
	return rc;
}

/* --- stats --------------------------------------------------------------- */

int stg_sum_counters(int fd, __u64 sum[STG_C_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;

	if (ncpu <= 0 || !(vals = calloc(ncpu, sizeof(*vals))))
		return -1; /* value_size 8: no padding between CPUs */
	memset(sum, 0, STG_C_MAX * sizeof(*sum));
	for (__u32 i = 0; i < STG_C_MAX; i++) {
		if (bpf_map_lookup_elem(fd, &i, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum[i] += vals[c];
	}
	free(vals);
	return 0;
}

__u64 stg_map_count(int fd)
{
	__u8 key[64] __attribute__((aligned(8))); /* the largest key: 36 */
	void *prev = NULL;
	__u64 n = 0;

	while (!bpf_map_get_next_key(fd, prev, key)) {
		n++;
		prev = key;
	}
	return n;
}

int stg_read_counters(__u64 sum[STG_C_MAX], __u64 *tracked, __u32 *capacity)
{
	int fd = stg_pinned("counters"), err;

	if (fd < 0)
		return -1;
	err = stg_sum_counters(fd, sum);
	close(fd);
	*tracked = 0;
	*capacity = 0;
	fd = stg_pinned("conns");
	if (fd >= 0) {
		*tracked = stg_map_count(fd);
		*capacity = map_info(fd).max_entries;
		close(fd);
	}
	return err;
}

void stg_print_counters(const __u64 sum[STG_C_MAX], __u64 tracked,
			bool json)
{
	__u64 resets = 0, evicted = 0;

	for (int r = 1; r < STG_R_MAX; r++)
		resets += sum[STG_C_RESETS + r];
	/* Entries evicted from a full table: made, less closed, less left
	 * (counted while traffic flows: about). */
	if (sum[STG_C_CONNECTIONS] > sum[STG_C_CLOSED] + tracked)
		evicted = sum[STG_C_CONNECTIONS] - sum[STG_C_CLOSED] - tracked;

	if (json) {
		printf("{");
		for (int i = 0; i < STG_C_RESETS; i++)
			printf("\"%s\":%llu,", counter_names[i],
			       (unsigned long long)sum[i]);
		printf("\"connections_tracked\":%llu,\"connections_evicted\":%llu,",
		       (unsigned long long)tracked, (unsigned long long)evicted);
		printf("\"resets\":%llu,\"resets_by_reason\":{",
		       (unsigned long long)resets);
		for (int r = 1; r < STG_R_MAX; r++)
			printf("%s\"%s\":%llu", r > 1 ? "," : "",
			       reason_names[r],
			       (unsigned long long)sum[STG_C_RESETS + r]);
		printf("}}");
		return;
	}
	for (int i = 0; i < STG_C_RESETS; i++)
		printf("%-26s %llu\n", counter_names[i],
		       (unsigned long long)sum[i]);
	printf("%-26s %llu\n", "connections_tracked", (unsigned long long)tracked);
	printf("%-26s %llu\n", "connections_evicted", (unsigned long long)evicted);
	printf("%-26s %llu\n", "resets", (unsigned long long)resets);
	for (int r = 1; r < STG_R_MAX; r++)
		printf("  %-24s %llu\n", reason_names[r],
		       (unsigned long long)sum[STG_C_RESETS + r]);
}

static int cmd_stats(int argc, char **argv)
{
	bool json = argc == 2 && !strcmp(argv[1], "--json");
	__u64 sum[STG_C_MAX], tracked;
	__u32 capacity;
	int fd;

	if (help_asked(argc, argv, "Usage: starttls-guard stats [--json]\n"
				   "Show the counters, summed over CPUs.\n"))
		return 0;
	if (argc > 1 && !json) {
		const char *bad = strcmp(argv[1], "--json") ? argv[1] : argv[2];

		usage_error("stats", "%s '%s'", bad[0] == '-' ? "unknown option"
					       : "unexpected argument", bad);
	}
	if (check_env(false) || open_pinned("counters", &fd))
		return 1;
	close(fd);
	if (stg_read_counters(sum, &tracked, &capacity))
		return fail("couldn't read the counters: %s", strerror(errno));
	stg_print_counters(sum, tracked, json);
	if (json)
		printf("\n");
	return 0;
}

/* --- main ---------------------------------------------------------------- */

static const char usage[] =
	"Usage: starttls-guard COMMAND [ARGS]\n"
	"Reset SMTP connections that send a plaintext command before STARTTLS.\n"
	"\n"
	"Commands:\n"
	"  attach IFACE... [--port N[:POLICY]]... [--policy P] [--monitor|--enforce]\n"
	"         [options: see 'attach --help']\n"
	"                           attach to interfaces (or update options)\n"
	"  detach [IFACE...] [--force]\n"
	"                           detach (from all when none is named)\n"
	"  status                   where it is attached, mode, ports, scanner\n"
	"  allow add CIDR [--deny|--auth-only] | allow del CIDR | allow list\n"
	"                           exempt, deny or relax hosts, live\n"
	"  stats [--json]           counters\n"
	"  events [--json]          follow resets, upgrades and other decisions\n"
	"  run [--config FILE] [--check] [--metrics ADDR:PORT]\n"
	"      [--log stdout|syslog] [--keep-attached]\n"
	"                           run as a daemon, as FILE says (default\n"
	"                           " STG_CONF_PATH ")\n"
	"  replay [options] FILE... what the guard would have done with the\n"
	"                           connections of pcap/pcapng captures\n"
	"  help                     this help\n"
	"\n"
	"  --version                the version\n"
	"\n"
	"'starttls-guard COMMAND --help' tells more. Needs root.\n"
	"Environment: STARTTLS_GUARD_PIN_DIR, a directory on bpffs to pin to\n"
	"instead of " STG_PIN_DIR ".\n"
	"Exit status: 0 done, 1 failed, 2 bad command line.\n";

int main(int argc, char **argv)
{
	libbpf_set_print(libbpf_print);
	if (getenv("STARTTLS_GUARD_PIN_DIR") && *getenv("STARTTLS_GUARD_PIN_DIR"))
		stg_pin_dir = getenv("STARTTLS_GUARD_PIN_DIR");
	if (argc < 2)
		usage_error(NULL, "no command");
	if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("starttls-guard %s\n", STG_VERSION);
		return 0;
	}
	if (strlen(stg_pin_dir) > 64 || stg_pin_dir[0] != '/')
		return fail("STARTTLS_GUARD_PIN_DIR must be an absolute path "
			    "of at most 64 bytes");
	argv++;
	argc--;
	if (!strcmp(argv[0], "attach"))
		return cmd_attach(argc, argv);
	if (!strcmp(argv[0], "detach"))
		return cmd_detach(argc, argv);
	if (!strcmp(argv[0], "status"))
		return cmd_status(argc, argv);
	if (!strcmp(argv[0], "allow"))
		return cmd_allow(argc, argv);
	if (!strcmp(argv[0], "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(argv[0], "events"))
		return cmd_events(argc, argv);
	if (!strcmp(argv[0], "run"))
		return cmd_run(argc, argv);
	if (!strcmp(argv[0], "replay"))
		return cmd_replay(argc, argv);
	usage_error(NULL, "unknown command '%s'", argv[0]);
	return 2;
}
