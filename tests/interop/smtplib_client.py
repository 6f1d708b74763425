#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""tests/interop/smtplib_client.py - send one interop message with Python's smtplib.

    smtplib_client.py MODE HOST PORT TOKEN [auth]

MODE tls: EHLO, STARTTLS (certificate not verified), EHLO, [AUTH PLAIN], MAIL...
MODE plain: no STARTTLS; smtplib itself falls back to HELO when EHLO is
refused (ehlo_or_helo_if_needed).  With "auth" in plain mode AUTH PLAIN is
sent in plaintext even if the server does not advertise AUTH (on purpose:
the guard must reset it).
Exit: 0 accepted, 1 refused / protocol error, 3 connection reset or closed,
4 connect failed, 5 timeout.  One line on stderr on failure (never the
credentials).
"""
import base64
import smtplib
import socket
import ssl
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate

USER, PASSWORD = "alice@example.org", "interop-secret"
FROM, TO = "alice@example.org", "bob@example.org"


def main():
    mode, host, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    auth = len(sys.argv) > 5 and sys.argv[5] == "auth"
    msg = EmailMessage()
    msg["From"], msg["To"] = FROM, TO
    msg["Subject"] = "interop smtplib " + token
    msg["Date"] = formatdate()
    msg["Message-ID"] = "<%s.smtplib@example.org>" % token
    msg.set_content("interop test message %s from smtplib\n" % token)
    try:
        s = smtplib.SMTP(host, port, timeout=15, local_hostname="client.example.org")
    except OSError as e:
        print("connect failed: %s" % e, file=sys.stderr)
        return 4
    try:
        if mode == "tls":
            s.ehlo()
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo()
        else:
            s.ehlo_or_helo_if_needed()
        if auth:
            blob = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode()
            # docmd, not login(): login() refuses when AUTH is not advertised.
            code, resp = s.docmd("AUTH", "PLAIN " + blob)
            if code != 235:
                print("AUTH refused: %d %s" % (code, resp.decode(errors="replace")), file=sys.stderr)
                s.close()
                return 1
        refused = s.send_message(msg)
        if refused:
            print("recipient refused: %r" % refused, file=sys.stderr)
            return 1
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass
        return 0
    except smtplib.SMTPServerDisconnected as e:
        print("server disconnected: %s" % e, file=sys.stderr)
        return 3
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as e:
        print("connection reset: %s" % e, file=sys.stderr)
        return 3
    except (socket.timeout, TimeoutError) as e:
        print("timeout: %s" % e, file=sys.stderr)
        return 5
    except smtplib.SMTPResponseException as e:
        print("%s: %d %s" % (type(e).__name__, e.smtp_code, e.smtp_error.decode(errors="replace")), file=sys.stderr)
        return 1
    except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
