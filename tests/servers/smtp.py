#!/usr/bin/env python3
"""An SMTP server for tests (aiosmtpd): STARTTLS required before AUTH, AUTH
required before mail, and every message kept.

    smtp.py MAILDIR CERT KEY USER PASSWORD

Listens on 127.0.0.1 (a free port), prints the port on its first line of
stdout, then serves until killed. Each message accepted is written to
MAILDIR/N.json: the envelope (from, to), the login used, whether TLS was on,
the raw message, and its subject, Message-ID and text body as a mail reader
decodes them.
"""

import email
import email.policy
import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main(maildir, cert, key, user, password):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    count = 0

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            nonlocal count
            count += 1
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            record = {
                "subject": str(parsed["subject"]),
                "message_id": str(parsed["message-id"]),
                "body": parsed.get_body(("plain",)).get_content(),
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "login": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
                "tls": session.ssl is not None,
                "message": envelope.content.decode("utf-8", "replace"),
            }
            path = os.path.join(maildir, f"{count}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == user and auth_data.password.decode() == password
        )
        if not ok:
            # Not handled here: aiosmtpd answers 535 itself.
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data.login)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    print(port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
