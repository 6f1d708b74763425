#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Send one test message over SMTP and report how the session ended.

Usage: smtp_client.py --server ADDR [--port 25] [--source ADDR]
                      [--starttls] [--token TOKEN]

Sends EHLO, optionally STARTTLS (certificate NOT verified) + EHLO, then
MAIL FROM:<alice@example.org>, RCPT TO:<bob@example.org>, DATA with TOKEN
in the Subject and body.  Prints one line and exits with:
  0  message accepted (250 after DATA)          "OK: ..."
  3  connection reset by the peer (TCP RST)     "RESET: ..."
  4  connect failed (refused / timeout / unreachable)   "CONNECT: ..."
  1  anything else (SMTP error reply, clean close, timeout, TLS error...)
"""

import argparse
import email.utils
import smtplib
import socket
import ssl
import sys
import uuid

TIMEOUT = 10.0  # seconds, per socket operation
EXIT_OK, EXIT_OTHER, EXIT_RESET, EXIT_CONNECT = 0, 1, 3, 4


def _reset_in_chain(exc):
    """True if exc, or an exception it was raised from/during, is a reset.

    smtplib turns socket errors into SMTPServerDisconnected inside an
    ``except OSError`` block, so the original ConnectionResetError (ECONNRESET
    from recv/send) survives as __context__.  A clean close by the server
    (EOF) has no such cause.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionResetError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--source", help="local address to bind")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--token", default="stg-" + uuid.uuid4().hex)
    ap.add_argument("--hold", action="store_true",
                    help="after EHLO print HELD and wait for a line on stdin")
    args = ap.parse_args()

    src = (args.source, 0) if args.source else None
    try:
        # Connects and reads the 220 banner (SMTPConnectError if not 220).
        smtp = smtplib.SMTP(args.server, args.port, timeout=TIMEOUT,
                            local_hostname="client.stg.test",
                            source_address=src)
    except (ConnectionRefusedError, TimeoutError, socket.timeout) as e:
        print("CONNECT: %s:%d: %s" % (args.server, args.port, _describe(e)))
        return EXIT_CONNECT
    except smtplib.SMTPException as e:  # (a subclass of OSError: keep first)
        # Banner missing or not 220.
        if _reset_in_chain(e):
            print("RESET: during banner: %s" % _describe(e))
            return EXIT_RESET
        print("ERROR: during banner: %s" % _describe(e))
        return EXIT_OTHER
    except OSError as e:
        # e.g. ENETUNREACH/EHOSTUNREACH; a reset at connect is still a reset.
        if _reset_in_chain(e):
            print("RESET: during connect/banner: %s" % _describe(e))
            return EXIT_RESET
        print("CONNECT: %s:%d: %s" % (args.server, args.port, _describe(e)))
        return EXIT_CONNECT

    msg = ("From: alice@example.org\r\n"
           "To: bob@example.org\r\n"
           "Subject: starttls-guard test %s\r\n"
           "Date: %s\r\n"
           "Message-ID: <%s@client.stg.test>\r\n"
           "\r\n"
           "token %s tls=%s\r\n"
           % (args.token, email.utils.formatdate(), args.token, args.token,
              "yes" if args.starttls else "no"))
    stage = "EHLO"
    try:
        smtp.ehlo()
        if args.starttls:
            stage = "STARTTLS"
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            smtp.starttls(context=ctx)
            stage = "EHLO after STARTTLS"
            smtp.ehlo()
        if args.hold:
            print("HELD", flush=True)
            sys.stdin.readline()
        stage = "MAIL FROM"
        code, resp = smtp.mail("alice@example.org")
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, resp, "alice@example.org")
        stage = "RCPT TO"
        code, resp = smtp.rcpt("bob@example.org")
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused(
                {"bob@example.org": (code, resp)})
        stage = "DATA"
        code, resp = smtp.data(msg.encode("ascii"))
        if code != 250:
            raise smtplib.SMTPDataError(code, resp)
    except Exception as e:  # classify, print one line, exit
        smtp.close()
        if _reset_in_chain(e):
            print("RESET: at %s: %s" % (stage, _describe(e)))
            return EXIT_RESET
        print("ERROR: at %s: %s" % (stage, _describe(e)))
        return EXIT_OTHER

    try:  # The message is already accepted; QUIT problems do not matter.
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
    print("OK: accepted token=%s tls=%s: %s"
          % (args.token, "yes" if args.starttls else "no",
             resp.decode("utf-8", "replace")))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
