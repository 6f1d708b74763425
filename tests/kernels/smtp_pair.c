// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A tiny SMTP server and client for the kernel boots (tests/kernels/),
 * static, so that they run in an initramfs beside busybox. Not TLS: after
 * STARTTLS both sides exchange records shaped as TLS's (a handshake
 * record each way, then application data), which is what the guard sees
 * of a real session.
 *
 *   smtp_pair server ADDR PORT      serve until killed
 *   smtp_pair client ADDR PORT plain
 *       EHLO, then MAIL FROM in plaintext. Exit 0 when the connection
 *       is reset before MAIL is answered, 1 when MAIL is answered.
 *   smtp_pair client ADDR PORT tls
 *       EHLO, STARTTLS, a hello record, then an application-data record
 *       whose bytes read "MAIL FROM:" (as ciphertext may): exit 0 when
 *       the server echoes it, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char hello_c[] =	/* a ClientHello record, 42 bytes of body */
	"\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03"
	"abcdefghijklmnopqrstuvwxyz012345\x00\x00\x00\x00";
static const char hello_s[] =	/* a ServerHello record */
	"\x16\x03\x03\x00\x2a\x02\x00\x00\x26\x03\x03"
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ678901\x00\x00\x00\x00";
#define HELLO_LEN 47
static const char data[] = "\x17\x03\x03\x00\x1bMAIL FROM:<a@example.org>\r\n";
#define DATA_LEN 32

static int addr_of(const char *a, int port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return AF_INET6;
	}
	return -1;
}

/* Read exactly @n bytes: 0, or -errno (-EPIPE at EOF) */
static int read_n(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0)
			return -errno;
		if (!r)
			return -EPIPE;
		got += r;
	}
	return 0;
}

/* Read one line (CRLF-ended) into @buf: its length, or -errno */
static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		int err = read_n(fd, buf + n, 1);

		if (err)
			return err;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return n;
}

static int say(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

static void serve(int fd)
{
	char line[1024], rec[HELLO_LEN];

	if (say(fd, "220 mx.example.org ESMTP\r\n"))
		return;
	while (read_line(fd, line, sizeof(line)) > 0) {
		if (!strncasecmp(line, "EHLO", 4) || !strncasecmp(line, "HELO", 4)) {
			say(fd, "250-mx.example.org\r\n250 STARTTLS\r\n");
		} else if (!strncasecmp(line, "STARTTLS", 8)) {
			say(fd, "220 2.0.0 go ahead\r\n");
			if (read_n(fd, rec, HELLO_LEN) ||
			    write(fd, hello_s, HELLO_LEN) != HELLO_LEN)
				return;
			/* "Encrypted" from here: records echoed */
			for (;;) {
				char r[DATA_LEN];

				if (read_n(fd, r, DATA_LEN) ||
				    write(fd, r, DATA_LEN) != DATA_LEN)
					return;
			}
		} else if (!strncasecmp(line, "QUIT", 4)) {
			say(fd, "221 bye\r\n");
			return;
		} else {
			say(fd, "250 ok\r\n");
		}
	}
}

static int server(const char *a, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fam = addr_of(a, port, &ss, &len), s, one = 1;

	signal(SIGCHLD, SIG_IGN);
	s = socket(fam, SOCK_STREAM, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s, (void *)&ss, len) || listen(s, 16)) {
		perror("smtp_pair server");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);

		if (c < 0)
			continue;
		if (!fork()) {
			serve(c);
			_exit(0);
		}
		close(c);
	}
}

/* Read replies up to the last line of one ("250 ", not "250-"): 0, or
 * -errno (-ECONNRESET when reset) */
static int reply(int fd, const char *code)
{
	char line[1024];
	int n;

	do {
		n = read_line(fd, line, sizeof(line));
		if (n < 0)
			return n;
		if (strncmp(line, code, 3))
			return -EPROTO;
	} while (line[3] == '-');
	return 0;
}

static int client(const char *a, int port, int tls)
{
	struct timeval tv = { .tv_sec = 5 };
	struct sockaddr_storage ss;
	char echo[DATA_LEN], rec[HELLO_LEN];
	socklen_t len;
	int fam = addr_of(a, port, &ss, &len), s, err;

	s = socket(fam, SOCK_STREAM, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    connect(s, (void *)&ss, len)) {
		perror("smtp_pair client: connect");
		return 2;
	}
	if (reply(s, "220") || say(s, "EHLO c.example.org\r\n") ||
	    reply(s, "250")) {
		fprintf(stderr, "smtp_pair client: no greeting or EHLO reply\n");
		return 2;
	}
	if (!tls) {
		say(s, "MAIL FROM:<a@example.org>\r\n");
		err = reply(s, "250");
		if (err == -ECONNRESET) {
			printf("plain: reset at MAIL FROM\n");
			return 0;
		}
		printf("plain: MAIL FROM %s\n", err ? strerror(-err) : "answered 250");
		return 1;
	}
	if (say(s, "STARTTLS\r\n") || reply(s, "220") ||
	    write(s, hello_c, HELLO_LEN) != HELLO_LEN ||
	    read_n(s, rec, HELLO_LEN) || write(s, data, DATA_LEN) != DATA_LEN) {
		printf("tls: the upgrade failed: %s\n", strerror(errno));
		return 1;
	}
	err = read_n(s, echo, DATA_LEN);
	if (err || memcmp(echo, data, DATA_LEN)) {
		printf("tls: application data %s\n", err ? strerror(-err) : "changed");
		return 1;
	}
	printf("tls: upgraded, application data passed\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(argv[2], atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), !strcmp(argv[4], "tls"));
	fprintf(stderr, "usage: smtp_pair server ADDR PORT | "
			"client ADDR PORT plain|tls\n");
	return 2;
}
