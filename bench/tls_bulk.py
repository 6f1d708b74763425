#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""SMTP with STARTTLS for the benchmarks.

  tls_bulk.py server ADDR PORT CERT KEY
      greets, answers EHLO, STARTTLS (220), then TLS; in TLS, reads and
      drops everything (bulk) or answers EHLO/QUIT (sessions).
  tls_bulk.py bulk ADDR PORT SECONDS
      one session: EHLO, STARTTLS, handshake, then writes for SECONDS;
      prints the bytes per second written (and "reset" if the
      connection was reset before).
  tls_bulk.py sessions ADDR PORT SECONDS
      sessions one after another (connect, EHLO, STARTTLS, handshake,
      EHLO, QUIT) for SECONDS; prints the sessions per second.
"""
import socket
import ssl
import sys
import threading
import time


def serve_one(conn, ctx):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = conn.makefile("rwb", buffering=0)
    f.write(b"220 bench ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        verb = line[:4].upper()
        if verb == b"EHLO":
            f.write(b"250-bench\r\n250 STARTTLS\r\n")
        elif line[:8].upper() == b"STARTTLS":
            f.write(b"220 go ahead\r\n")
            break
        else:
            f.write(b"221 bye\r\n")
            return
    tls = ctx.wrap_socket(conn, server_side=True)
    first = tls.recv(1 << 16)
    if first.startswith(b"EHLO"):
        # a session: EHLO, QUIT
        tls.sendall(b"250 bench\r\n")
        tls.recv(100)
        tls.sendall(b"221 bye\r\n")
        return
    buf = bytearray(1 << 16)
    while tls.recv_into(buf):
        pass


def server(addr, port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = socket.create_server((addr, int(port)), reuse_port=False)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=lambda c=conn: _guard(serve_one, c, ctx),
                         daemon=True).start()


def _guard(fn, conn, ctx):
    try:
        fn(conn, ctx)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def upgrade(addr, port):
    s = socket.create_connection((addr, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rwb", buffering=0)
    f.readline()
    f.write(b"EHLO client.example.org\r\n")
    while f.readline()[3:4] == b"-":
        pass
    f.write(b"STARTTLS\r\n")
    if not f.readline().startswith(b"220"):
        raise SystemExit("no 220 to STARTTLS")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s)


def bulk(addr, port, seconds):
    tls = upgrade(addr, port)
    chunk = b"x" * (1 << 16)
    sent = 0
    end = time.monotonic() + float(seconds)
    start = time.monotonic()
    reset = ""
    while time.monotonic() < end:
        try:
            tls.sendall(chunk)
        except (OSError, ssl.SSLError):
            reset = " reset"  # by something on the path: the rate so far
            break
        sent += len(chunk)
    print("%.0f%s" % (sent / (time.monotonic() - start), reset))


def sessions(addr, port, seconds):
    n = 0
    end = time.monotonic() + float(seconds)
    start = time.monotonic()
    while time.monotonic() < end:
        tls = upgrade(addr, port)
        tls.sendall(b"EHLO client.example.org\r\n")
        tls.recv(100)
        tls.sendall(b"QUIT\r\n")
        tls.recv(100)
        tls.close()
        n += 1
    print("%.1f" % (n / (time.monotonic() - start)))


if __name__ == "__main__":
    {"server": server, "bulk": bulk, "sessions": sessions}[sys.argv[1]](*sys.argv[2:])
