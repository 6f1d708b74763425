// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * For the static build only: libdbus-1.a (which libpcap.a needs) refers
 * to libsystemd's socket activation, of which Debian ships no static
 * library. Nothing the loader does reaches it (a D-Bus server started
 * by systemd would); these say what libsystemd says outside systemd:
 * no socket was passed.
 */
int sd_listen_fds(int unset_environment);
int sd_is_socket(int fd, int family, int type, int listening);

int sd_listen_fds(int unset_environment)
{
	(void)unset_environment;
	return 0;
}

int sd_is_socket(int fd, int family, int type, int listening)
{
	(void)fd;
	(void)family;
	(void)type;
	(void)listening;
	return 0;
}
