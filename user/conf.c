// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The daemon's configuration file: "key = value" lines as in Postfix's
 * main.cf. A line that starts with "#" is a comment; one that starts with
 * whitespace goes on with the line before; a key given twice takes its
 * last value; lists are separated by spaces or commas. The keys are
 * attach's long options, and the daemon's own (starttls-guard.conf(5)).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bpf/bpf.h>

#include "guard.h"
#include "cidr.h"

enum kind {
	K_ONE,		/* one value, an attach option's */
	K_LIST,		/* a list, each an attach option's value */
	K_MODE,		/* enforce | monitor */
	K_YESNO,	/* yes | no */
	K_IFACES,
	K_HOSTS,	/* CIDRs with the action */
	K_METRICS,
	K_LOG,
};

static const struct key {
	const char *name;
	enum kind kind;
	int opt;	/* attach's option code, or the host action */
} keys[] = {
	{ "interfaces", K_IFACES, 0 },
	{ "port", K_LIST, 'p' },
	{ "policy", K_ONE, 'P' },
	{ "mode", K_MODE, 0 },
	{ "default", K_ONE, 'd' },
	{ "exempt", K_HOSTS, STG_ACT_EXEMPT },
	{ "deny", K_HOSTS, STG_ACT_DENY },
	{ "auth-only-hosts", K_HOSTS, STG_ACT_AUTH_ONLY },
	{ "upgrade-verb", K_LIST, 'U' },
	{ "one-way", K_YESNO, 'O' },
	{ "implicit-tls-port", K_LIST, 'I' },
	{ "direction", K_ONE, 'D' },
	{ "midstream", K_ONE, 'M' },
	{ "max-connections", K_ONE, 'C' },
	{ "scanner", K_ONE, 'S' },
	{ "tc-mode", K_ONE, 'T' },
	{ "metrics", K_METRICS, 0 },
	{ "log", K_LOG, 0 },
	{ "keep-attached", K_YESNO, 'k' },
	{ "verbose", K_YESNO, 'v' },
};

#define NKEYS (sizeof(keys) / sizeof(*keys))

int stg_parse_listen(const char *s, void *sa, unsigned int *salen)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	struct sockaddr_in *in = sa;
	struct sockaddr_in6 *in6 = sa;
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon || colon == s)
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || !colon[1] || port > 65535)
		return -1;
	hl = colon - s;
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), s + 1);
		memset(in6, 0, sizeof(*in6));
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*salen = sizeof(*in6);
		return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	if (hl >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)hl, s);
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	*salen = sizeof(*in);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -1;
}

static int yes_no(const char *v)
{
	return !strcmp(v, "yes") ? 1 : !strcmp(v, "no") ? 0 : -1;
}

int stg_conf_add_host(struct stg_conf *c, const char *cidr, __u32 action,
		      char *err, size_t errlen)
{
	struct stg_conf_host *h;
	const char *why;

	if (c->nhosts >= STG_MAX_HOSTS)
		return snprintf(err, errlen, "at most %d hosts in all",
				STG_MAX_HOSTS), -1;
	h = realloc(c->hosts, (c->nhosts + 1) * sizeof(*h));
	if (!h)
		return snprintf(err, errlen, "out of memory"), -1;
	c->hosts = h;
	h += c->nhosts;
	why = stg_cidr_parse(cidr, &h->key);
	if (why)
		return snprintf(err, errlen, "bad CIDR '%s': %s", cidr, why), -1;
	for (int i = 0; i < c->nhosts; i++)
		if (!memcmp(&c->hosts[i].key, &h->key, sizeof(h->key)))
			return snprintf(err, errlen, "%s is given twice", cidr),
			       -1;
	h->action = action;
	c->nhosts++;
	return 0;
}

/* Apply @value of key @k to @c: 0, or -1 with the reason in @err. */
static int apply(struct stg_conf *c, const struct key *k, char *value,
		 char *err, size_t errlen)
{
	char *save = NULL, *item;
	int n = 0, v;

	switch (k->kind) {
	case K_ONE:
		if (!*value || strpbrk(value, " \t,"))
			return snprintf(err, errlen, "%s takes one value",
					k->name), -1;
		return stg_opt_set(&c->opts, k->opt, value, err, errlen);
	case K_MODE:
		if (strcmp(value, "enforce") && strcmp(value, "monitor"))
			return snprintf(err, errlen, "bad mode '%s': expected "
					"enforce or monitor", value), -1;
		return stg_opt_set(&c->opts, value[0] == 'm' ? 'm' : 'e', value,
				   err, errlen);
	case K_YESNO:
		v = yes_no(value);
		if (v < 0)
			return snprintf(err, errlen, "bad %s '%s': expected yes "
					"or no", k->name, value), -1;
		if (k->opt == 'O')
			return stg_opt_set(&c->opts, v ? 'O' : 'W', value, err,
					   errlen);
		if (k->opt == 'k')
			c->keep_attached = v;
		else
			c->verbose = v;
		return 0;
	case K_METRICS: {
		struct sockaddr_in6 sa;
		unsigned int len;

		if (*value && (strlen(value) >= sizeof(c->metrics) ||
			       stg_parse_listen(value, &sa, &len)))
			return snprintf(err, errlen, "bad metrics address "
					"'%s': expected ADDR:PORT (IPv6: "
					"[ADDR]:PORT), or nothing", value), -1;
		snprintf(c->metrics, sizeof(c->metrics), "%s", value);
		return 0;
	}
	case K_LOG:
		if (strcmp(value, "stdout") && strcmp(value, "syslog"))
			return snprintf(err, errlen, "bad log '%s': expected "
					"stdout or syslog", value), -1;
		c->syslog = value[1] == 'y';
		return 0;
	default:
		break;
	}
	/* Lists */
	for (item = strtok_r(value, " \t,", &save); item;
	     item = strtok_r(NULL, " \t,", &save), n++) {
		if (k->kind == K_LIST) {
			if (stg_opt_set(&c->opts, k->opt, item, err, errlen))
				return -1;
		} else if (k->kind == K_IFACES) {
			if (strlen(item) >= IF_NAMESIZE_CONF)
				return snprintf(err, errlen, "interface name "
						"'%s' too long", item), -1;
			if (c->nifaces >= STG_CONF_MAX_IFACES)
				return snprintf(err, errlen, "at most %d "
						"interfaces", STG_CONF_MAX_IFACES), -1;
			snprintf(c->ifaces[c->nifaces++], IF_NAMESIZE_CONF,
				 "%s", item);
		} else if (stg_conf_add_host(c, item, k->opt, err, errlen)) {
			return -1;
		}
	}
	/* An empty list: none (for the ports: the default, 25) */
	if (!n && k->opt == 'I')
		return stg_opt_set(&c->opts, 'I', "none", err, errlen);
	if (!n && k->opt == 'U')
		return stg_opt_set(&c->opts, 'U', "none", err, errlen);
	return 0;
}

int stg_conf_put_hosts(const struct stg_conf *c, int fd)
{
	for (int i = 0; i < c->nhosts; i++) {
		struct stg_host h = { .action = c->hosts[i].action,
				      .prefixlen = c->hosts[i].key.prefixlen };

		if (bpf_map_update_elem(fd, &c->hosts[i].key, &h, BPF_ANY))
			return -1;
	}
	return 0;
}

void stg_conf_free(struct stg_conf *c)
{
	free(c->hosts);
	c->hosts = NULL;
	c->nhosts = 0;
}

/* One logical line: @line (its number @no) with its continuations. */
struct entry {
	char *text;
	int no;
	const struct key *key;
	char *value;
};

int stg_conf_load(const char *path, struct stg_conf *c, char *err,
		  size_t errlen)
{
	struct entry *e = NULL;
	char *line = NULL, reason[256];
	size_t cap = 0;
	int n = 0, no = 0, rc = -1;
	FILE *f = fopen(path, "re");

	memset(c, 0, sizeof(*c));
	stg_opts_init(&c->opts);
	if (!f)
		return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
	{
		struct stat st;

		/* (not /dev/zero, not a terabyte by mistake) */
		if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) ||
		    st.st_size > STG_CONF_MAX_SIZE) {
			fclose(f);
			return snprintf(err, errlen, "%s: not a regular file of "
					"at most %d bytes", path,
					STG_CONF_MAX_SIZE), -1;
		}
	}
	while (getline(&line, &cap, f) > 0) {
		size_t l = strcspn(line, "\r\n");

		no++;
		line[l] = '\0';
		if (line[0] == '#' || !line[strspn(line, " \t")] ||
		    line[strspn(line, " \t")] == '#')
			continue;
		if (isspace((unsigned char)line[0]) && n) {
			/* goes on with the line before */
			char *t = realloc(e[n - 1].text,
					  strlen(e[n - 1].text) + l + 2);

			if (!t)
				goto oom;
			strcat(strcat(t, " "), line);
			e[n - 1].text = t;
			continue;
		}
		{
			struct entry *ne = realloc(e, (n + 1) * sizeof(*e));

			if (!ne)
				goto oom;
			e = ne;
		}
		e[n].text = strdup(line);
		e[n].no = no;
		e[n].key = NULL;
		if (!e[n++].text)
			goto oom;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		char *eq = strchr(e[i].text, '='), *k = e[i].text, *ke, *v;

		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'",
				 path, e[i].no);
			goto out;
		}
		for (ke = eq; ke > k && isspace((unsigned char)ke[-1]); ke--)
			;
		*ke = '\0';
		for (v = eq + 1; isspace((unsigned char)*v); v++)
			;
		for (ke = v + strlen(v); ke > v && isspace((unsigned char)ke[-1]);)
			*--ke = '\0';
		for (unsigned int j = 0; j < NKEYS; j++)
			if (!strcmp(k, keys[j].name))
				e[i].key = &keys[j];
		if (!e[i].key) {
			snprintf(err, errlen, "%s:%d: unknown key '%s'", path,
				 e[i].no, k);
			goto out;
		}
		e[i].value = v;
		if (strstr(v, " #") || strstr(v, "\t#") || v[0] == '#') {
			snprintf(err, errlen, "%s:%d: a comment goes on a line of "
				 "its own", path, e[i].no);
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		bool later = false;

		for (int j = i + 1; j < n; j++)
			later |= e[j].key == e[i].key;
		if (later)
			continue; /* the last one counts */
		if (apply(c, e[i].key, e[i].value, reason, sizeof(reason))) {
			snprintf(err, errlen, "%s:%d: %s", path, e[i].no, reason);
			goto out;
		}
	}
	/* What only the options together can say (a port given both ways) */
	if (stg_check_opts(&c->opts, reason, sizeof(reason))) {
		snprintf(err, errlen, "%s: %s", path, reason);
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "%s: out of memory", path);
out:
	for (int i = 0; i < n; i++)
		free(e[i].text);
	free(e);
	free(line);
	fclose(f);
	if (rc)
		stg_conf_free(c);
	return rc;
}
