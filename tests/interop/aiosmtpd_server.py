#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""aiosmtpd (Debian's python3-aiosmtpd) as an interop test server.

    aiosmtpd_server.py DIR

One process, one asyncio loop, four listening sockets: 0.0.0.0 and ::
on ports 25 and 2525.  STARTTLS is offered (DIR/tls/cert.pem and
key.pem), not required; AUTH PLAIN and LOGIN are offered only after TLS
(alice@example.org / interop-secret).  On port 2525 EHLO is answered
"502" and HELO works.  Mail for any address at example.org is appended to
the mbox DIR/mailbox; each message starts (after the "From " line) with
"X-Interop-TLS: yes (VERSION CIPHER)" or "X-Interop-TLS: no", then a
Received: header ("with ESMTPS" over TLS, as MTAs write it).

DIR/server.log gets one line per event, never a command's arguments:
    s=N connect port=25 peer=ADDR
    s=N cmd=VERB          (each command line that reached the SMTP
                           dispatcher, recognised or not)
    s=N tls=up VERSION    (STARTTLS handshake done)
    s=N disconnect reason=...
DIR/ready is written once all sockets listen.  SIGTERM stops it.
"""

import asyncio
import itertools
import logging
import os
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER = b"alice@example.org"
PASSWORD = b"interop-secret"
HOSTNAME = "mx.interop.test"
DOMAIN = "example.org"

_ids = itertools.count(1)
_log_file = None


def log(line):
    _log_file.write(f"{time.time():.6f} {line}\n")
    _log_file.flush()


class _Unrecognised(logging.Handler):
    """aiosmtpd logs unknown verbs itself ("%r unrecognised: %s"): turn
    that record (and only that one) into a cmd= line of our log."""

    def emit(self, record):
        if record.msg == "%r unrecognised: %s" and len(record.args) == 2:
            proto = _PEERS.get(record.args[0])
            sid = proto.sid if proto else "?"
            verb = "".join(c for c in str(record.args[1])[:32]
                           if c.isalnum() or c in "-_")
            log(f"s={sid} cmd={verb} unrecognised")


_PEERS = {}


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER
          and auth_data.password == PASSWORD)
    return AuthResult(success=ok, handled=False)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if not address.lower().endswith("@" + DOMAIN):
            return "550 5.1.1 Not a local address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        sslobj = None
        if session.ssl is not None and server.transport is not None:
            sslobj = server.transport.get_extra_info("ssl_object")
        if sslobj is not None:
            cipher = sslobj.cipher() or ("?", "?", 0)
            tls = f"yes ({sslobj.version()} {cipher[0]})"
            proto = "ESMTPS" if session.extended_smtp else "SMTPS"
        else:
            tls = "no"
            proto = "ESMTP" if session.extended_smtp else "SMTP"
        if session.authenticated:
            proto += "A"
        peer = session.peer[0] if session.peer else "unknown"
        qid = f"{os.getpid()}.{server.sid}.{time.time_ns()}"
        body = envelope.original_content or envelope.content or b""
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        lines = body.replace(b"\r\n", b"\n").split(b"\n")
        lines = [b">" + l if l.startswith(b"From ") else l for l in lines]
        head = (
            f"From {envelope.mail_from or 'MAILER-DAEMON'} "
            f"{time.asctime(time.gmtime())}\n"
            f"X-Interop-TLS: {tls}\n"
            f"Received: from {session.host_name or 'unknown'} ([{peer}])\n"
            f"\tby {HOSTNAME} (aiosmtpd) with {proto} id {qid}"
            + (f" ({tls[5:-1]})" if sslobj is not None else "") + "\n"
            f"\tfor <{envelope.rcpt_tos[0]}>; "
            f"{time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\n"
        ).encode()
        msg = head + b"\n".join(lines).rstrip(b"\n") + b"\n\n"
        with open(server.mailbox, "ab") as f:
            f.write(msg)
        return f"250 2.0.0 OK queued as {qid}"


class LoggingSMTP(SMTP):
    """aiosmtpd's SMTP with a session id and one log line per command
    verb, per connection and per disconnection."""

    port = 25
    mailbox = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sid = next(_ids)
        self._ended = False
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._logged(verb, method)

    def _logged(self, verb, method):
        async def call(arg):
            log(f"s={self.sid} cmd={verb}")
            return await method(arg)
        return call

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            _PEERS[self.session.peer] = self
            peer = self.session.peer[0] if self.session.peer else "?"
            log(f"s={self.sid} connect port={self.port} peer={peer}")
        elif self.session.ssl is not None:
            obj = transport.get_extra_info("ssl_object")
            log(f"s={self.sid} tls=up {obj.version() if obj else '?'}")

    def connection_lost(self, error):
        if not self._ended:
            self._ended = True
            _PEERS.pop(self.session.peer, None)
            why = type(error).__name__ if error is not None else "closed"
            log(f"s={self.sid} disconnect reason={why}")
        super().connection_lost(error)


class NoEhloSMTP(LoggingSMTP):
    """Port 2525: EHLO refused, so that clients fall back to HELO."""

    port = 2525

    async def smtp_EHLO(self, hostname):
        await self.push("502 5.5.2 EHLO not accepted here, use HELO")


async def main(d):
    global _log_file
    _log_file = open(os.path.join(d, "server.log"), "a", buffering=1)
    lg = logging.getLogger("mail.log")
    lg.setLevel(logging.WARNING)   # its INFO lines carry command arguments
    lg.propagate = False
    lg.addHandler(_Unrecognised())

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(d, "tls/cert.pem"),
                        os.path.join(d, "tls/key.pem"))
    mailbox = os.path.join(d, "mailbox")
    handler = Handler()
    loop = asyncio.get_running_loop()

    def factory(cls):
        def make():
            s = cls(handler, hostname=HOSTNAME, tls_context=ctx,
                    require_starttls=False, authenticator=authenticator,
                    auth_require_tls=True, loop=loop)
            s.mailbox = mailbox
            return s
        return make

    servers = []
    for cls, port in ((LoggingSMTP, 25), (NoEhloSMTP, 2525)):
        servers.append(await loop.create_server(
            factory(cls), host=["0.0.0.0", "::"], port=port,
            reuse_address=True))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log("server ready")
    with open(os.path.join(d, "ready"), "w") as f:
        f.write(f"{os.getpid()}\n")
    await stop.wait()
    for s in servers:
        s.close()
    log("server stopped")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: aiosmtpd_server.py DIR")
    asyncio.run(main(sys.argv[1]))
