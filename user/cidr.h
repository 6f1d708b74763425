/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Strict CIDR parsing and printing for the host map: IPv4 as IPv4-mapped
 * IPv6 (::ffff:a.b.c.d/96+len), so one LPM trie holds both families. */
#ifndef STG_CIDR_H
#define STG_CIDR_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "starttls_guard.h"

/* Parse "a.b.c.d[/n]" or "x::y[/n]" into @k (host bits must be zero, as in
 * "192.0.2.0/24": a CIDR with host bits set is refused as a likely typo).
 * Returns NULL, or what is wrong. */
static inline const char *stg_cidr_parse(const char *s, struct stg_host_key *k)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long len;
	int v4, max;

	if (strlen(s) >= sizeof(buf))
		return "not an IPv4 or IPv6 address";
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(k, 0, sizeof(*k));
	if (inet_pton(AF_INET, buf, k->addr + 12) == 1) {
		v4 = 1;
		k->addr[10] = k->addr[11] = 0xff;
	} else if (inet_pton(AF_INET6, buf, k->addr) == 1) {
		v4 = 0;
	} else {
		return "not an IPv4 or IPv6 address";
	}
	max = v4 ? 32 : 128;
	len = max;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return "the prefix length is not a decimal number";
		len = strtoul(slash + 1, &end, 10);
		if (*end || (slash[1] == '0' && slash[2]))
			return "the prefix length is not a decimal number";
		if (len > (unsigned long)max)
			return v4 ? "an IPv4 prefix length is at most 32"
				  : "an IPv6 prefix length is at most 128";
	}
	k->prefixlen = (v4 ? 96 : 0) + len;
	for (unsigned int bit = k->prefixlen; bit < 128; bit++)
		if (k->addr[bit / 8] & (0x80 >> (bit % 8)))
			return "host bits are set after the prefix";
	return NULL;
}

/* Print @k as it was given (IPv4 without the mapping). */
static inline void stg_cidr_format(const struct stg_host_key *k, char *out,
				   size_t len)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	char a[INET6_ADDRSTRLEN];

	if (k->prefixlen >= 96 && !memcmp(k->addr, mapped, 12)) {
		inet_ntop(AF_INET, k->addr + 12, a, sizeof(a));
		snprintf(out, len, "%s/%u", a, k->prefixlen - 96);
	} else {
		inet_ntop(AF_INET6, k->addr, a, sizeof(a));
		snprintf(out, len, "%s/%u", a, k->prefixlen);
	}
}

#endif /* STG_CIDR_H */
