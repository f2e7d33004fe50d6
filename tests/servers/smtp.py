#!/usr/bin/env python3
"""An SMTP server for tests (aiosmtpd): STARTTLS required before AUTH, AUTH
required before mail, and every message kept.

    smtp.py MAILDIR CERT KEY USER PASSWORD

Listens on 127.0.0.1 (a free port), prints the port on its first line of
stdout, then serves until killed. Each message accepted is written to
MAILDIR/N.json: the envelope (from, to), the login used and the raw message.
"""

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
            record = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "login": session.login_data.decode() if isinstance(session.login_data, bytes) else session.login_data,
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
        if ok:
            session.login_data = auth_data.login
        return AuthResult(success=ok)

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
