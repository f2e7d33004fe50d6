#!/usr/bin/env python3
"""A webhook receiver for tests: records every request and answers as told.

    receiver.py RECORD_FILE [--key KEY] [--fail N] [--fail-while FILE]

Listens on 127.0.0.1 (a free port), prints the port on its first line of
stdout, then serves until killed. Each request is appended to RECORD_FILE as a
JSON line: path, headers, body, the status answered, and whether the
X-Slipway-Signature header is HMAC-SHA256 of the body under KEY (checked here,
independently of Slipway's code). It answers 500 to the first N requests, and
to any while FILE exists; 200 otherwise.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
answered = 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("record")
    parser.add_argument("--key", default="")
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--fail-while", default="")
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            global answered
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            expected = "sha256=" + hmac.new(args.key.encode(), body, hashlib.sha256).hexdigest()
            with lock:
                failing = answered < args.fail or (
                    args.fail_while and os.path.exists(args.fail_while)
                )
                answered += 1
                status = 500 if failing else 200
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "status": status,
                    "signed": hmac.compare_digest(
                        self.headers.get("x-slipway-signature", ""), expected
                    ),
                }
                with open(args.record, "a") as f:
                    f.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
