// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
// tests/interop/nodemailer_client.js - send one interop message with
// nodemailer (installed by "npm ci" in tests/interop).
//
//     node nodemailer_client.js MODE HOST PORT TOKEN [auth]
//
// MODE tls: requireTLS (STARTTLS or fail), certificate not verified.
// MODE plain: ignoreTLS (never STARTTLS, even if offered); nodemailer
// falls back to HELO by itself when EHLO is refused.  "auth": AUTH PLAIN
// as alice@example.org (forceAuth: sent even when AUTH is not advertised,
// i.e. in plaintext in plain mode).
// Exit: 0 accepted, 1 refused / error, 3 connection reset or closed,
// 5 timeout. One line on stderr on failure (never the credentials).
'use strict';
const nodemailer = require('nodemailer');

const [mode, host, port, token, auth] = process.argv.slice(2);
const opts = {
    host,
    port: Number(port),
    secure: false,
    name: 'client.example.org',
    connectionTimeout: 10000,
    greetingTimeout: 10000,
    socketTimeout: 15000,
    tls: { rejectUnauthorized: false },
    logger: false
};
if (mode === 'tls') opts.requireTLS = true;
else opts.ignoreTLS = true;
if (auth === 'auth') {
    opts.auth = { user: 'alice@example.org', pass: 'interop-secret', method: 'PLAIN' };
    opts.forceAuth = true;
}
const transport = nodemailer.createTransport(opts);
transport.sendMail({
    from: 'alice@example.org',
    to: 'bob@example.org',
    subject: 'interop nodemailer ' + token,
    messageId: '<' + token + '.nodemailer@example.org>',
    text: 'interop test message ' + token + ' from nodemailer\n'
}).then(info => {
    if (info.accepted.length !== 1) {
        console.error('not accepted: ' + JSON.stringify(info.rejected));
        process.exit(1);
    }
    process.exit(0);
}, err => {
    const msg = String(err.message || err).split('\n')[0];
    console.error((err.code || 'ERROR') + ': ' + msg);
    if (err.code === 'ETIMEDOUT') process.exit(5);
    if (['ECONNRESET', 'EPIPE'].includes(err.errno || err.code) ||
        /ECONNRESET|EPIPE|Connection closed|unexpectedly/i.test(msg)) process.exit(3);
    process.exit(1);
});
