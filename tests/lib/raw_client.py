#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""SMTP sessions the way odd clients write them, for the end-to-end tests.

  raw_client.py healthcheck ADDR N
      N sessions as load-balancer health checks make them: connect, EHLO,
      then QUIT, an abrupt close (FIN) or an abortive one (RST), in turn.
      Prints "OK N"; exit 0, or 1 when a session was reset or failed.

  raw_client.py burst ADDR SIZE [--mail-inside]
      After the greeting, EHLO lines of about 1000 bytes, SIZE bytes in
      all, in one write (one TSO/GSO packet, or a GRO one at the server),
      reading the replies as they come; then MAIL FROM (--mail-inside:
      MAIL FROM in the middle of the write instead). Prints how many EHLOs
      were answered. Exit 0 when every EHLO was answered and MAIL was
      reset, 2 when MAIL was answered, 3 when reset before all the EHLOs
      were answered, 1 other.

  raw_client.py sendfile ADDR LINES
      After the greeting, LINES written with sendfile() (the payload then
      sits in page fragments of the socket buffer), then QUIT. Exit 0 when
      every line was answered, 3 reset, 1 other.

  raw_client.py bdat ADDR TOKEN
      A message sent with BDAT (CHUNKING) in plaintext, in two chunks,
      the first with a line "AUTH PLAIN ..." in it. Exit 0 when accepted,
      3 reset, 1 other.

  raw_client.py auth ADDR
      EHLO, then AUTH PLAIN in plaintext. Exit 3 when reset, 0 when
      answered (whatever the answer), 1 other.

  raw_client.py probe ADDR STOPFILE
      Every 50 ms a plaintext session (EHLO, then MAIL FROM) until
      STOPFILE exists. Prints the number reset and the number whose MAIL
      was answered. Exit 0 when none was answered and some were reset.

  raw_client.py vlanframe IFACE DMAC SRC DST VID TEXT
      Write one Ethernet frame on IFACE (a packet socket) to DMAC: an
      802.1Q tag VID, IPv4 SRC -> DST, TCP port 40025 -> 25, ACK|PSH,
      TEXT (with \r\n escapes) as payload. For kernels without VLAN
      devices: the guard still sees tagged traffic.

  raw_client.py tfo ADDR LINES [--starttls]
      TCP Fast Open: LINES (with \\r\\n escapes) sent as data on the SYN;
      then, with --starttls, STARTTLS, TLS, and a message with LINES' token
      in its subject. Prints the outcome; exit 0 delivered or session
      ended well, 3 reset, 1 other.
"""
import socket
import ssl
import struct
import sys

TIMEOUT = 10.0


def reply(f):
    """Read one SMTP reply (all its lines); return (code, text)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line.decode(errors="replace"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), "".join(lines)


def session(addr, name=None):
    """Connect, read the greeting and, given @name, send EHLO and read
    its reply. Returns the socket and its reader."""
    s = socket.create_connection((addr, 25), TIMEOUT)
    f = s.makefile("rb")
    reply(f)
    if name:
        s.sendall(b"EHLO %s\r\n" % name.encode())
        reply(f)
    return s, f


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def healthcheck(addr, n):
    for i in range(n):
        s, f = session(addr, "healthcheck")
        if i % 3 == 0:
            s.sendall(b"QUIT\r\n")
            reply(f)
        elif i % 3 == 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        f.close()
        s.close()
    print("OK", n)
    return 0


def unescape(lines):
    return lines.encode().decode("unicode_escape").encode("latin-1")


def burst(addr, size, mail_inside):
    import threading
    s, f = session(addr)
    line = b"EHLO " + b"b" * 993 + b"\r\n"
    n = size // len(line)
    data = line * n
    if mail_inside:
        data = line * (n // 2) + b"MAIL FROM:<alice@example.org>\r\n" + \
            line * (n - n // 2)
    got = [0]

    def read():
        try:
            for _ in range(n):
                reply(f)
                got[0] += 1
        except OSError:
            pass

    t = threading.Thread(target=read)
    t.start()
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    t.join(TIMEOUT * 3)
    if got[0] < n:
        print("RESET after %d of %d EHLOs" % (got[0], n))
        return 3
    try:
        s.sendall(b"MAIL FROM:<alice@example.org>\r\n")
        code, text = reply(f)
    except (ConnectionError, OSError):
        print("OK: %d EHLOs answered, MAIL reset" % n)
        return 0
    print("MAIL answered:", text.strip())
    return 2


def sendfile(addr, lines):
    import tempfile
    data = unescape(lines)
    s, f = session(addr)
    with tempfile.TemporaryFile() as tf:
        tf.write(data)
        tf.seek(0)
        s.sendfile(tf)
    for _ in range(data.count(b"\n")):
        reply(f)
    s.sendall(b"QUIT\r\n")
    reply(f)
    print("OK answered")
    return 0


def bdat(addr, token):
    s, f = session(addr, "bdat.example")
    first = ("Subject: %s\r\n\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
             % token).encode()
    second = ("%s\r\n" % token).encode()
    s.sendall(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
              + b"BDAT %d\r\n" % len(first) + first
              + b"BDAT %d LAST\r\n" % len(second) + second)
    for _ in range(4):
        code, text = reply(f)
        if code >= 400:
            print("refused:", text.strip())
            return 1
    s.sendall(b"QUIT\r\n")
    reply(f)
    print("OK accepted")
    return 0


def auth(addr):
    s, f = session(addr, "auth.example")
    s.sendall(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
    code, text = reply(f)
    print("answered:", text.strip())
    return 0


def probe(addr, stopfile):
    import os
    import time
    reset = answered = other = 0
    while not os.path.exists(stopfile):
        try:
            s, f = session(addr, "probe.example")
            s.sendall(b"MAIL FROM:<alice@example.org>\r\n")
            reply(f)
            answered += 1
            s.close()
        except (ConnectionResetError, BrokenPipeError):
            reset += 1
        except (OSError, ValueError):
            other += 1
        time.sleep(0.05)
    print("reset %d answered %d other %d" % (reset, answered, other))
    return 0 if reset and not answered else 1


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def vlanframe(iface, dmac, src, dst, vid, text):
    data = unescape(text)
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", 40025, 25, 1000, 2000, 5 << 4, 0x18,
                      65535, 0, 0) + data
    pseudo = sa + da + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6,
                     0, sa, da)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    smac = open("/sys/class/net/%s/address" % iface).read().strip()
    frame = (bytes.fromhex(dmac.replace(":", "")) +
             bytes.fromhex(smac.replace(":", "")) +
             struct.pack("!HH", 0x8100, vid) + struct.pack("!H", 0x0800) +
             ip + tcp)
    s.send(frame)
    print("sent", len(frame))
    return 0


def tfo(addr, lines, starttls):
    data = unescape(lines)
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    try:
        s.sendto(data, socket.MSG_FASTOPEN, (addr, 25))  # blocking: connects
    except ConnectionRefusedError as e:
        print("RESET: at the SYN:", e)  # an RST in SYN-SENT
        return 3
    s.settimeout(TIMEOUT)
    f = s.makefile("rb")
    try:
        code, _ = reply(f)          # greeting
        for _ in range(data.count(b"\n")):
            code, text = reply(f)   # one per line sent on the SYN
        if not starttls:
            s.sendall(b"QUIT\r\n")
            reply(f)
            print("OK session ended")
            return 0
        s.sendall(b"STARTTLS\r\n")
        code, text = reply(f)
        if code != 220:
            print("STARTTLS refused:", text.strip())
            return 1
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname=addr)
        tf = t.makefile("rb")
        token = data.split()[-1].decode()
        for cmd in (b"EHLO tfo.example\r\n", b"MAIL FROM:<alice@example.org>\r\n",
                    b"RCPT TO:<bob@example.org>\r\n", b"DATA\r\n",
                    b"Subject: " + token.encode() + b"\r\n\r\n" + token.encode()
                    + b"\r\n.\r\n", b"QUIT\r\n"):
            t.sendall(cmd)
            code, text = reply(tf)
            if code >= 400:
                print("refused:", text.strip())
                return 1
        print("OK delivered")
        return 0
    except ConnectionResetError as e:
        print("RESET:", e)
        return 3


def main():
    try:
        if sys.argv[1] == "healthcheck":
            return healthcheck(sys.argv[2], int(sys.argv[3]))
        if sys.argv[1] == "burst":
            return burst(sys.argv[2], int(sys.argv[3]),
                         "--mail-inside" in sys.argv)
        if sys.argv[1] == "sendfile":
            return sendfile(sys.argv[2], sys.argv[3])
        if sys.argv[1] == "bdat":
            return bdat(sys.argv[2], sys.argv[3])
        if sys.argv[1] == "auth":
            return auth(sys.argv[2])
        if sys.argv[1] == "probe":
            return probe(sys.argv[2], sys.argv[3])
        if sys.argv[1] == "vlanframe":
            return vlanframe(sys.argv[2], sys.argv[3], sys.argv[4],
                             sys.argv[5], int(sys.argv[6]), sys.argv[7])
        if sys.argv[1] == "tfo":
            return tfo(sys.argv[2], sys.argv[3], "--starttls" in sys.argv)
    except (ConnectionResetError, BrokenPipeError) as e:
        print("RESET:", e)
        return 3
    except (OSError, ValueError) as e:
        print("ERROR:", e)
        return 1
    print(__doc__)
    return 1


if __name__ == "__main__":
    sys.exit(main())
