// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * starttls-guard run: the daemon. Attaches as its configuration file says,
 * follows interfaces as they come and go, writes the events, serves
 * Prometheus metrics, re-reads the file on SIGHUP and detaches on SIGTERM.
 * One thread, one epoll loop: signals (signalfd), link and route changes
 * (rtnetlink), the events ring buffer, the metrics socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "guard.h"

static const char run_usage[] =
	"Usage: starttls-guard run [--config FILE] [--check] [--metrics ADDR:PORT]\n"
	"                          [--log stdout|syslog] [--keep-attached] [-v]\n"
	"Run as a daemon: attach as FILE says (default " STG_CONF_PATH "),\n"
	"attach to matching interfaces as they appear, write one line per event\n"
	"(JSON on stdout, or to syslog), serve metrics. SIGHUP re-reads FILE and\n"
	"applies it live (connections keep their state; a FILE with an error is\n"
	"refused and the running configuration stays); so does a change to\n"
	"FILE, seen by inotify. SIGTERM or SIGINT\n"
	"detaches and exits 0. See starttls-guard.conf(5).\n"
	"\n"
	"  -c, --config FILE      the configuration file\n"
	"      --check            only read FILE: say what is wrong in it (exit\n"
	"                         2) or that it is fine (exit 0)\n"
	"      --metrics ADDR:PORT  serve /metrics (Prometheus) and /healthz\n"
	"                         there ([ADDR]:PORT for IPv6); overrides the\n"
	"                         file's 'metrics'\n"
	"      --log TO           events to stdout (JSON lines, the default) or\n"
	"                         syslog; overrides the file's 'log'\n"
	"      --keep-attached    on SIGTERM, exit leaving the guard attached\n"
	"  -v, --verbose          show libbpf's debug output\n"
	"  -h, --help             this help\n"
	"\n"
	"Messages other than events go to stderr. Exit status: 0 stopped by a\n"
	"signal, 1 failed, 2 bad command line or configuration file.\n";

/* What the command line says over the file */
static struct {
	const char *config, *metrics;
	int syslog;		/* -1: the file's */
	bool keep_attached, verbose;
} cli = { .config = STG_CONF_PATH, .syslog = -1 };

static struct stg_conf conf;	/* the running configuration */
static struct starttls_guard_bpf *skel;
static FILE *events_out;	/* stdout, as it was when started */
static int ep = -1;		/* the epoll instance */
static int listen_fd = -1;
static char listening[64];	/* the address listen_fd is bound to */

/* What an epoll event is about: the kind in the upper half of data.u64,
 * an index (of a metrics client) in the lower. */
enum { EV_SIGNAL = 1, EV_NETLINK, EV_EVENTS, EV_LISTEN, EV_CONF, EV_CLIENT };
#define EV(kind, i) ((__u64)(kind) << 32 | (__u32)(i))

static void watch(int fd, __u64 what)
{
	epoll_ctl(ep, EPOLL_CTL_ADD, fd,
		  &(struct epoll_event){ .events = EPOLLIN, .data.u64 = what });
}
static __u64 reloads_ok, reloads_failed;

/* --- interfaces ---------------------------------------------------------- */

/* Interfaces with a default route (IPv4 and IPv6) */
static bool default_route(const char *name)
{
	char line[512], ifn[64];
	unsigned long dst, mask;
	bool found = false;
	FILE *f = fopen("/proc/net/route", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lx %*x %*x %*d %*d %*d %lx", ifn, &dst,
			   &mask) == 3 && !dst && !mask)
			found = !strcmp(ifn, name);
	if (f)
		fclose(f);
	f = fopen("/proc/net/ipv6_route", "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char d[33];
		unsigned int plen;

		if (sscanf(line, "%32s %x %*s %*s %*s %*s %*s %*s %*s %63s", d,
			   &plen, ifn) == 3 && !plen &&
		    !strcmp(d, "00000000000000000000000000000000") &&
		    strcmp(ifn, "lo"))
			found = !strcmp(ifn, name);
	}
	if (f)
		fclose(f);
	return found;
}

/* The interfaces of this namespace @c wants, now: in @names (freed with
 * free_names). Patterns match only Ethernet-like devices (not tun,
 * WireGuard...), which the guard can parse. */
static int wanted(const struct stg_conf *c, char ***names)
{
	struct if_nameindex *all = if_nameindex(), *i;
	int n = 0;

	*names = NULL;
	for (i = all; i && i->if_index; i++) {
		bool want = false;

		for (int j = 0; j < c->nifaces && !want; j++) {
			const char *p = c->ifaces[j];

			if (!strcmp(p, "default-route"))
				want = default_route(i->if_name);
			else if (strpbrk(p, "*?["))
				want = !fnmatch(p, i->if_name, 0);
			else
				want = !strcmp(p, i->if_name);
		}
		if (want) {
			/* Ethernet-like only (a named tun is left alone, as
			 * attach would refuse it) */
			int type = stg_link_type(i->if_name);

			want = type == ARPHRD_ETHER || type == ARPHRD_LOOPBACK;
		}
		if (!want)
			continue;
		*names = realloc(*names, (n + 1) * sizeof(**names));
		(*names)[n++] = strdup(i->if_name);
	}
	if (all)
		if_freenameindex(all);
	return n;
}

static void free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Attach to the wanted interfaces not attached yet; detach from those no
 * longer wanted, forget those gone. */
static void follow_interfaces(void)
{
	static int before = -1;
	char **names;
	int n = wanted(&conf, &names), now;

	now = stg_prune(names, n);
	for (int i = 0; i < n; i++) {
		if (stg_attached(names[i]))
			continue;
		if (stg_attach_more(skel, names[i], conf.opts.want))
			say("couldn't attach to %s; trying again when it "
			    "changes", names[i]);
		else
			now++;
	}
	free_names(names, n);
	/* Guarding nothing is said once, when it starts. */
	if (!now && before)
		say("warning: no interface matches 'interfaces' now: mail is "
		    "not guarded until one appears");
	before = now;
}

/* --- hosts --------------------------------------------------------------- */

/* The host map becomes the file's: entries it lacks go. */
static int sync_hosts(const struct stg_conf *c)
{
	struct stg_host_key key, *prev = NULL;
	int fd = stg_pinned("hosts"), rc = 0;

	if (fd < 0)
		return fail("no host map: %s", strerror(errno));
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		bool keep = false;

		for (int i = 0; i < c->nhosts && !keep; i++)
			keep = !memcmp(&c->hosts[i].key, &key, sizeof(key));
		if (!keep && !bpf_map_delete_elem(fd, &key)) {
			prev = NULL; /* start again: the walk's key is gone */
			continue;
		}
		prev = &key;
	}
	if (stg_conf_put_hosts(c, fd))
		rc = fail("couldn't set a host map entry: %s", strerror(errno));
	close(fd);
	return rc;
}

/* --- metrics ------------------------------------------------------------- */

static int metrics_listen(const char *addr)
{
	struct sockaddr_in6 sa;
	unsigned int len;
	int fd, one = 1;

	if (stg_parse_listen(addr, &sa, &len))
		return fail("bad metrics address '%s'", addr);
	fd = socket(((struct sockaddr *)&sa)->sa_family,
		    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail("metrics socket: %s", strerror(errno)), -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, len) || listen(fd, 16)) {
		fail("couldn't serve metrics on %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The Prometheus text exposition of the counters */
static char *metrics_text(size_t *len)
{
	__u64 sum[STG_C_MAX], tracked;
	__u32 capacity;
	__u64 ifaces = 0;
	int fd;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	fprintf(f, "# HELP starttls_guard_build_info The version running.\n"
		   "# TYPE starttls_guard_build_info gauge\n"
		   "starttls_guard_build_info{version=\"%s\"} 1\n", STG_VERSION);
	if (!stg_read_counters(sum, &tracked, &capacity)) {
		for (int i = 0; i < STG_C_RESETS; i++)
			fprintf(f, "# TYPE starttls_guard_%s_total counter\n"
				   "starttls_guard_%s_total %llu\n",
				counter_names[i], counter_names[i],
				(unsigned long long)sum[i]);
		fprintf(f, "# HELP starttls_guard_resets_total Connections reset "
			   "(in monitor mode: counted only as monitor_violations), "
			   "by reason.\n"
			   "# TYPE starttls_guard_resets_total counter\n");
		for (int r = 1; r < STG_R_MAX; r++)
			fprintf(f, "starttls_guard_resets_total{reason=\"%s\"} %llu\n",
				reason_names[r],
				(unsigned long long)sum[STG_C_RESETS + r]);
		fprintf(f, "# HELP starttls_guard_connections_evicted_total Entries "
			   "a full table evicted (about: made, less closed, less "
			   "left).\n"
			   "# TYPE starttls_guard_connections_evicted_total counter\n"
			   "starttls_guard_connections_evicted_total %llu\n",
			sum[STG_C_CONNECTIONS] > sum[STG_C_CLOSED] + tracked ?
				(unsigned long long)(sum[STG_C_CONNECTIONS] -
						     sum[STG_C_CLOSED] - tracked) : 0ULL);
		fprintf(f, "# HELP starttls_guard_connections_tracked Connections "
			   "in the table now.\n"
			   "# TYPE starttls_guard_connections_tracked gauge\n"
			   "starttls_guard_connections_tracked %llu\n"
			   "# HELP starttls_guard_connections_capacity Size of the "
			   "connection table.\n"
			   "# TYPE starttls_guard_connections_capacity gauge\n"
			   "starttls_guard_connections_capacity %u\n",
			(unsigned long long)tracked, capacity);
	}
	fd = stg_pinned("ifaces");
	if (fd >= 0) {
		ifaces = stg_map_count(fd);
		close(fd);
	}
	fprintf(f, "# HELP starttls_guard_attached_interfaces Interfaces the "
		   "guard is attached to.\n"
		   "# TYPE starttls_guard_attached_interfaces gauge\n"
		   "starttls_guard_attached_interfaces %llu\n"
		   "# HELP starttls_guard_config_reloads_total Reloads of the configuration file.\n"
		   "# TYPE starttls_guard_config_reloads_total counter\n"
		   "starttls_guard_config_reloads_total{result=\"success\"} %llu\n"
		   "starttls_guard_config_reloads_total{result=\"failure\"} %llu\n",
		(unsigned long long)ifaces, (unsigned long long)reloads_ok,
		(unsigned long long)reloads_failed);
	fclose(f);
	return buf;
}

/* Healthy while the guard is loaded and not switched off */
static bool healthy(void)
{
	struct stg_config cfg;
	__u32 zero = 0;
	int fd = stg_pinned("settings");
	bool ok = fd >= 0 && !bpf_map_lookup_elem(fd, &zero, &cfg) &&
		  cfg.mode != STG_MODE_OFF;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* Metrics clients: read without blocking the loop, each with a deadline;
 * at most MAX_CLIENTS at once (more are closed at once). */
#define MAX_CLIENTS 16
#define CLIENT_MS 2000

static struct client {
	int fd;			/* -1: free */
	size_t got;
	__u64 deadline;		/* CLOCK_MONOTONIC, ms */
	char req[1024];
} clients[MAX_CLIENTS];

static __u64 now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (__u64)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void client_close(struct client *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

/* Answer the request in @c (GET or HEAD of /metrics or /healthz). The
 * answer is small: it goes in one send, or not at all. */
static void respond(struct client *c)
{
	const char *status = "404 Not Found", *type = "text/plain", *path;
	char head[256], *body = NULL;
	size_t len = 0;
	bool head_only = !strncmp(c->req, "HEAD ", 5);

	c->req[c->got] = '\0';
	path = strchr(c->req, ' ');
	if (strncmp(c->req, "GET ", 4) && !head_only) {
		status = "405 Method Not Allowed";
	} else if (!strncmp(path + 1, "/metrics", 8) && strchr(" ?", path[9])) {
		body = metrics_text(&len);
		status = body ? "200 OK" : "500 Internal Server Error";
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (!strncmp(path + 1, "/healthz", 8) && strchr(" ?", path[9])) {
		status = healthy() ? "200 OK" : "503 Service Unavailable";
	}
	if (!body && asprintf(&body, "%s\n", status) >= 0)
		len = strlen(body);
	snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
		 type, len);
	if (send(c->fd, head, strlen(head), MSG_NOSIGNAL | MSG_DONTWAIT) > 0 &&
	    !head_only && body)
		send(c->fd, body, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(body);
	client_close(c);
}

/* Bytes from client @c: answered once its request's head is whole (or
 * fills the buffer); closed on EOF or an error. */
static void client_read(struct client *c)
{
	ssize_t r = recv(c->fd, c->req + c->got, sizeof(c->req) - 1 - c->got,
			 MSG_DONTWAIT);

	if (r <= 0) {
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			client_close(c);
		return;
	}
	c->got += r;
	c->req[c->got] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") ||
	    c->got == sizeof(c->req) - 1 || memchr(c->req, '\0', c->got))
		respond(c);
}

static void clients_accept(void)
{
	for (int n = 0; n < MAX_CLIENTS; n++) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		int i = 0;

		if (fd < 0)
			return;
		while (i < MAX_CLIENTS && clients[i].fd >= 0)
			i++;
		if (i == MAX_CLIENTS) {
			close(fd); /* busy */
			continue;
		}
		clients[i] = (struct client){ .fd = fd,
					      .deadline = now_ms() + CLIENT_MS };
		watch(fd, EV(EV_CLIENT, i));
	}
}

/* Close clients past their deadline; the ms until the next one (at most
 * @max). */
static int clients_expire(int max)
{
	__u64 now = now_ms();

	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0)
			continue;
		if (clients[i].deadline <= now)
			client_close(&clients[i]);
		else if (clients[i].deadline - now < (__u64)max)
			max = clients[i].deadline - now;
	}
	return max;
}

/* --- events -------------------------------------------------------------- */

static int write_event(void *ctx, void *data, size_t len)
{
	const struct stg_event *e = data;
	char line[512];

	(void)ctx;
	if (len < sizeof(*e))
		return 0;
	stg_event_format(e, !conf.syslog, line, sizeof(line));
	if (conf.syslog) {
		syslog(e->type == STG_EV_TLS || e->type == STG_EV_EXEMPT ?
			       LOG_INFO : LOG_WARNING, "%s", line);
	} else {
		fprintf(events_out, "%s\n", line);
		fflush(events_out);
	}
	return 0;
}

/* --- configuration ------------------------------------------------------- */

/* The file as last read: a change (inotify) reloads it when it differs. */
static char *conf_text;

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re"), *m = open_memstream(&buf, &len);
	int c;

	while (f && m && (c = fgetc(f)) != EOF)
		fputc(c, m);
	if (m)
		fclose(m);
	if (f)
		fclose(f);
	return buf;
}

/* Read the file; the command line's options over it. 0, or -1 printed. */
static int read_conf(struct stg_conf *c)
{
	char err[512];

	free(conf_text);
	conf_text = slurp(cli.config);
	if (stg_conf_load(cli.config, c, err, sizeof(err))) {
		fail("%s", err);
		return -1;
	}
	if (cli.metrics)
		snprintf(c->metrics, sizeof(c->metrics), "%s", cli.metrics);
	if (cli.syslog >= 0)
		c->syslog = cli.syslog;
	if (c->syslog && access("/dev/log", W_OK)) {
		say("warning: no syslog socket (/dev/log): events go to "
		    "stdout");
		c->syslog = false;
	}
	c->keep_attached |= cli.keep_attached;
	verbose = cli.verbose || c->verbose;
	return 0;
}

/* Make @c the running configuration (it is taken over): the program
 * (re)loaded and swapped on every interface, connections keep their
 * state. 0, or 1 printed with the running configuration left as it was
 * (and @c freed). */
static int apply_conf(struct stg_conf *c)
{
	struct starttls_guard_bpf *next = NULL;
	bool relisten = strcmp(listening, c->metrics);
	int n, rc, lfd = -1;
	char **names;

	/* What can fail first: the metrics socket, the program. */
	if (relisten && c->metrics[0] && (lfd = metrics_listen(c->metrics)) < 0) {
		stg_conf_free(c);
		return 1;
	}
	n = wanted(c, &names);
	rc = stg_attach(&c->opts, names, n, true, &next);
	free_names(names, n);
	if (rc) {
		if (lfd >= 0)
			close(lfd);
		stg_conf_free(c);
		return 1;
	}
	stg_release(skel);
	skel = next;
	stg_conf_free(&conf);
	conf = *c;
	if (conf.syslog)
		openlog("starttls-guard", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	follow_interfaces();
	sync_hosts(&conf);
	if (relisten) {
		if (listen_fd >= 0) {
			epoll_ctl(ep, EPOLL_CTL_DEL, listen_fd, NULL);
			close(listen_fd);
		}
		listen_fd = lfd;
		snprintf(listening, sizeof(listening), "%s", conf.metrics);
		if (listen_fd >= 0)
			watch(listen_fd, EV(EV_LISTEN, 0));
	}
	return 0;
}

/* Read the file again and apply it; with @changed_only, only when it
 * differs from what was read last (a change inotify saw). */
static void reload(bool changed_only)
{
	struct stg_conf next;

	if (changed_only) {
		char *now = slurp(cli.config);
		bool same = now && conf_text && !strcmp(now, conf_text);

		free(now);
		if (same)
			return;
	}
	if (read_conf(&next) || apply_conf(&next)) {
		reloads_failed++;
		say("reload refused: the running configuration stays");
		return;
	}
	reloads_ok++;
	say("reloaded %s (%s mode)", cli.config,
	    conf.opts.mode == STG_MODE_MONITOR ? "monitor" : "enforce");
}

/* A watch on the file's directory: editors and Kubernetes replace it by
 * a rename. -1 when it cannot be had (SIGHUP still reloads). */
static int watch_conf(void)
{
	char dir[PATH_MAX];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	snprintf(dir, sizeof(dir), "%s", cli.config);
	if (fd >= 0 && inotify_add_watch(fd, dirname(dir), IN_CLOSE_WRITE |
					 IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		say("warning: couldn't watch %s (%s): reload with SIGHUP",
		    cli.config, strerror(errno));
	return fd;
}

/* One daemon per pin directory: a second would take the first's
 * interfaces, and its exit would detach them. The lock is a directory
 * "run" among the pins, so that daemons in other mount namespaces (a
 * container and the host) see it too. Returns the fd to keep, or -1
 * (printed). */
static int run_lock(void)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/run", stg_pin_dir);
	if ((mkdir(stg_pin_dir, 0700) && errno != EEXIST) ||
	    (mkdir(path, 0700) && errno != EEXIST) ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return fail("couldn't make %s: %s", path, strerror(errno)), -1;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		fail("another 'starttls-guard run' guards with %s (it holds "
		     "%s)", stg_pin_dir, path);
		return -1;
	}
	return fd;
}

/* --- the loop ------------------------------------------------------------ */

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "log", required_argument, NULL, 'L' },
		{ "keep-attached", no_argument, NULL, 'k' },
		{ "check", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct epoll_event ev[8];
	struct ring_buffer *rb = NULL;
	struct stg_conf first;
	int opt, sfd, nl, evfd, rc = 1, wfd = -1;
	bool running = true, check = false, started = false;
	sigset_t sigs;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli.config = optarg;
			break;
		case 'M': {
			struct sockaddr_in6 sa;
			unsigned int len;

			if (strlen(optarg) >= sizeof(conf.metrics) ||
			    stg_parse_listen(optarg, &sa, &len)) {
				fprintf(stderr, "starttls-guard: run: bad --metrics "
					"'%s': expected ADDR:PORT (see "
					"'starttls-guard run --help')\n", optarg);
				return 2;
			}
			cli.metrics = optarg;
			break;
		}
		case 'L':
			if (strcmp(optarg, "stdout") && strcmp(optarg, "syslog")) {
				fprintf(stderr, "starttls-guard: run: bad --log "
					"'%s': expected stdout or syslog (see "
					"'starttls-guard run --help')\n", optarg);
				return 2;
			}
			cli.syslog = optarg[1] == 'y';
			break;
		case 'k':
			cli.keep_attached = true;
			break;
		case 'C':
			check = true;
			break;
		case 'v':
			cli.verbose = true;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "starttls-guard: run: %s '%s' (see "
				"'starttls-guard run --help')\n",
				opt == ':' ? "a value is needed by" : "unknown option",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "starttls-guard: run: unexpected argument '%s' "
			"(interfaces go in the configuration file; see "
			"'starttls-guard run --help')\n", argv[optind]);
		return 2;
	}
	if (read_conf(&first))
		return 2;
	if (check) {
		printf("%s: fine\n", cli.config);
		stg_conf_free(&first);
		return 0;
	}
	if (check_env(true) || run_lock() < 0)
		return 1;

	/* stdout carries the events alone: everything else to stderr. */
	events_out = fdopen(dup(STDOUT_FILENO), "w");
	if (!events_out || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		return fail("couldn't set up the output: %s", strerror(errno));
	setvbuf(stdout, NULL, _IOLBF, 0);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    NETLINK_ROUTE);
	if (nl >= 0) {
		struct sockaddr_nl sa = {
			.nl_family = AF_NETLINK,
			.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE |
				     RTMGRP_IPV6_ROUTE,
		};

		if (bind(nl, (struct sockaddr *)&sa, sizeof(sa))) {
			close(nl);
			nl = -1;
		}
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || nl < 0 || ep < 0) {
		fail("couldn't set up the event loop: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if (apply_conf(&first))
		goto out;
	evfd = stg_pinned("events");
	rb = evfd >= 0 ? ring_buffer__new(evfd, write_event, NULL, NULL) : NULL;
	if (!rb) {
		fail("couldn't read the events: %s", strerror(errno));
		goto out;
	}
	watch(sfd, EV(EV_SIGNAL, 0));
	watch(nl, EV(EV_NETLINK, 0));
	watch(ring_buffer__epoll_fd(rb), EV(EV_EVENTS, 0));
	wfd = watch_conf();
	if (wfd >= 0)
		watch(wfd, EV(EV_CONF, 0));
	say("running (%s mode%s%s)", conf.opts.mode == STG_MODE_MONITOR ?
	    "monitor" : "enforce", listening[0] ? ", metrics on " : "",
	    listening);
	started = true;

	while (running) {
		int n = epoll_wait(ep, ev, 8, clients_expire(5000));

		if (n < 0 && errno != EINTR) {
			fail("epoll: %s", strerror(errno));
			goto out;
		}
		if (!healthy()) {
			/* Detached from outside (or switched off): say so and
			 * exit, to be started again. */
			say("the guard was detached by someone else: exiting");
			goto out;
		}
		for (int i = 0; i < n; i++) {
			__u32 what = ev[i].data.u64 >> 32;
			__u32 idx = (__u32)ev[i].data.u64;
			struct signalfd_siginfo si;
			char buf[8192];

			switch (what) {
			case EV_SIGNAL:
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo != SIGHUP)
						running = false;
					else
						reload(false);
				}
				break;
			case EV_CONF:
				while (read(wfd, buf, sizeof(buf)) > 0)
					;
				reload(true);
				break;
			case EV_NETLINK:
				while (recv(nl, buf, sizeof(buf), 0) > 0)
					;
				follow_interfaces();
				break;
			case EV_EVENTS:
				ring_buffer__consume(rb);
				break;
			case EV_LISTEN:
				clients_accept();
				break;
			case EV_CLIENT:
				if (idx < MAX_CLIENTS && clients[idx].fd >= 0)
					client_read(&clients[idx]);
				break;
			}
		}
	}
	ring_buffer__consume(rb);
	rc = 0;
out:
	if (rb)
		ring_buffer__free(rb);
	/* A start that failed leaves nothing attached, whatever the file
	 * says. */
	if (skel && (!conf.keep_attached || !started)) {
		rc |= stg_detach_all(false);
		say("detached");
	} else if (skel) {
		say("left attached");
	}
	if (!skel) {
		/* nothing was loaded: the lock (and the directory, if it
		 * holds nothing else) go */
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/run", stg_pin_dir);
		rmdir(path);
		rmdir(stg_pin_dir);
	}
	stg_release(skel);
	stg_conf_free(&conf);
	return rc;
}
