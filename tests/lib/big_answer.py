#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""A STARTTLS upgrade whose server answers the client's TLS hello with one
large write (a big certificate chain sent at once, as some TLS stacks do),
over loopback so that it leaves as one segment-offload packet.

Usage: big_answer.py [--port 25] [--size 20000]
Runs a tiny server and a client on 127.0.0.1. The server greets, answers
EHLO and STARTTLS (220), then answers the client's first bytes with SIZE
bytes that start like a TLS handshake record. The client checks it got
them all. Exit 0 when it did, 3 when the connection was reset, 1 else.
No real TLS: only the record framing the guard looks at.
"""
import argparse
import socket
import sys
import threading


def serve(lsock, size):
    conn, _ = lsock.accept()
    with conn:
        f = conn.makefile("rb")
        conn.sendall(b"220 mx.test ESMTP\r\n")
        f.readline()
        conn.sendall(b"250 mx.test\r\n")
        f.readline()
        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        conn.recv(5)  # the record header of the client's hello
        answer = b"\x16\x03\x03" + (size - 5).to_bytes(2, "big")
        conn.sendall(answer + bytes(i & 0xff for i in range(size - 5)))
        conn.recv(1)  # until the client closes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--size", type=int, default=20000)
    a = ap.parse_args()
    lsock = socket.create_server(("127.0.0.1", a.port))
    threading.Thread(target=serve, args=(lsock, a.size), daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", a.port), timeout=10) as c:
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"EHLO client.test\r\n")
            f.readline()
            c.sendall(b"STARTTLS\r\n")
            if not f.readline().startswith(b"220 "):
                print("no 220")
                return 1
            c.sendall(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
            got = 0
            while got < a.size:
                b = f.read1(65536)
                if not b:
                    print(f"closed after {got} of {a.size} bytes")
                    return 1
                got += len(b)
            print(f"OK: {got} bytes")
            return 0
    except ConnectionResetError as e:
        print(f"RESET: {e}")
        return 3
    except OSError as e:
        print(f"ERROR: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
