// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Events: the guard's ring buffer read and written one line each, for
 * "starttls-guard events" and the daemon.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "guard.h"

static const char *const event_names[STG_EV_MAX] = {
	[STG_EV_RESET] = "reset",
	[STG_EV_MONITOR] = "monitor",
	[STG_EV_DENIED] = "denied",
	[STG_EV_EXEMPT] = "exempt",
	[STG_EV_TLS] = "tls",
};

static const char *const phase_names[] = {
	[STG_PLAIN] = "plaintext",
	[STG_STARTTLS_SENT] = "starttls_sent",
	[STG_TLS_GO] = "starttls_accepted",
	[STG_TLS_HELLO] = "tls_hello",
	[STG_PICKUP_TLS] = "pickup",
	[STG_TLS] = "tls",
	[STG_EXEMPT] = "exempt",
	[STG_BLOCKED] = "reset",
	[STG_MONITORED] = "monitored",
};

const char *stg_phase_name(unsigned int phase)
{
	return STG_NAME(phase_names, phase);
}

void stg_addr_format(const __u8 a[16], char *buf, size_t len)
{
	static const __u8 v4[12] = { [10] = 0xff, [11] = 0xff };

	if (!memcmp(a, v4, 12))
		inet_ntop(AF_INET, a + 12, buf, len);
	else
		inet_ntop(AF_INET6, a, buf, len);
}

void stg_verb_format(const __u64 v[2], char out[SMTP_VERB_MAX + 1])
{
	memset(out, 0, SMTP_VERB_MAX + 1);
	if (!v[0] && !v[1])
		return;
	/* Only an SMTP command's: never anything a client may have sent
	 * in its place (a password, an address). */
	if (!stg_known_verb(v)) {
		strcpy(out, "other");
		return;
	}
	for (int b = 0; b < SMTP_VERB_MAX; b++)
		out[b] = v[b / 8] >> (8 * (b % 8));
}

void stg_event_format(const struct stg_event *e, bool json, char *buf,
		      size_t len)
{
	char cli[INET6_ADDRSTRLEN], srv[INET6_ADDRSTRLEN], when[40];
	char ifname[IF_NAMESIZE] = "", verb[SMTP_VERB_MAX + 1] = "";
	struct timespec mono, real;
	struct tm tm;
	time_t sec;
	__u64 ns;

	/* The event's monotonic time on the wall clock */
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	ns = (__u64)real.tv_sec * 1000000000ULL + real.tv_nsec -
	     ((__u64)mono.tv_sec * 1000000000ULL + mono.tv_nsec - e->time_ns);
	sec = ns / 1000000000ULL;
	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03lluZ",
		 (unsigned long long)(ns / 1000000ULL % 1000));

	stg_addr_format(e->key.cli_addr, cli, sizeof(cli));
	stg_addr_format(e->key.srv_addr, srv, sizeof(srv));
	/* An interface name may hold any byte but '/' and whitespace:
	 * what JSON (or a log line) cannot carry verbatim becomes '?'. */
	if (!if_indextoname(e->ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "if%u", e->ifindex);
	for (char *c = ifname; *c; c++)
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ||
		    (unsigned char)*c >= 0x7f)
			*c = '?';
	stg_verb_format(e->verb, verb);

	if (json)
		snprintf(buf, len,
			 "{\"time\":\"%s\",\"event\":\"%s\"%s%s%s,"
			 "\"client\":\"%s\",\"client_port\":%u,"
			 "\"server\":\"%s\",\"server_port\":%u,"
			 "\"interface\":\"%s\",\"direction\":\"%s\","
			 "\"state\":\"%s\"%s%s%s}",
			 when, STG_NAME(event_names, e->type),
			 e->reason ? ",\"reason\":\"" : "",
			 e->reason ? STG_NAME(reason_names, e->reason) : "",
			 e->reason ? "\"" : "",
			 cli, e->key.cli_port, srv, e->key.srv_port, ifname,
			 e->ingress ? "ingress" : "egress",
			 stg_phase_name(e->phase),
			 *verb ? ",\"verb\":\"" : "", verb, *verb ? "\"" : "");
	else
		snprintf(buf, len, "%s %s%s%s client %s:%u server %s:%u on %s "
			 "%s, was %s%s%s", when, STG_NAME(event_names, e->type),
			 e->reason ? " " : "",
			 e->reason ? STG_NAME(reason_names, e->reason) : "",
			 cli, e->key.cli_port, srv, e->key.srv_port, ifname,
			 e->ingress ? "ingress" : "egress",
			 stg_phase_name(e->phase), *verb ? ", verb " : "",
			 verb);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int print_event(void *json, void *data, size_t len)
{
	char line[512];

	if (len < sizeof(struct stg_event))
		return 0;
	stg_event_format(data, json != NULL, line, sizeof(line));
	printf("%s\n", line);
	fflush(stdout);
	return 0;
}

static const char events_usage[] =
	"Usage: starttls-guard events [--json]\n"
	"Follow the attached guard's events, one line each, until interrupted:\n"
	"resets (with the reason and, for a command, its verb: never its\n"
	"argument), upgrades to TLS, exempt and denied connections, violations\n"
	"seen in monitor mode. --json: one JSON object per line.\n"
	"The events are taken from the guard's ring buffer: while\n"
	"'starttls-guard run' is running, it takes them (read its output).\n";

int cmd_events(int argc, char **argv)
{
	bool json = false;
	struct ring_buffer *rb;
	int fd, err = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(events_usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--json")) {
			fprintf(stderr, "starttls-guard: events: %s '%s' (see "
				"'starttls-guard events --help')\n",
				argv[i][0] == '-' ? "unknown option"
						  : "unexpected argument",
				argv[i]);
			return 2;
		}
		json = true;
	}
	if (check_env(false) || open_pinned("events", &fd))
		return 1;
	rb = ring_buffer__new(fd, print_event, json ? (void *)1 : NULL, NULL);
	if (!rb) {
		close(fd);
		return fail("couldn't read the events: %s", strerror(errno));
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stop) {
		err = ring_buffer__poll(rb, 500);
		if (err < 0 && err != -EINTR)
			break;
		err = 0;
	}
	ring_buffer__free(rb);
	close(fd);
	return err ? fail("reading the events: %s", strerror(-err)) : 0;
}
