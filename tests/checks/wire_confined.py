#!/usr/bin/env python3
"""The wire stays at the edge: `slipway_proto` and `tonic` may be named only in
the coordinator's `grpc/`, the agent's session and the CLI's client and api (and in the
proto crate itself and the tests, which speak the wire as outside clients do).
Everything else speaks the domain's types.

Usage: wire_confined.py REPO_ROOT ; prints each offending line, exits 1 if any.
"""

import re
import sys
from pathlib import Path

ALLOWED = [
    "coordinator/src/grpc/",
    "agent/src/session.rs",
    "cli/src/client.rs",
    "cli/src/api.rs",
]
SCANNED = ["coordinator/src", "coordinator/domain/src", "coordinator/local-cloud/src", "coordinator/aws/src", "agent/src", "cli/src", "common/src"]
WIRE = re.compile(r"\bslipway_proto\b|\btonic\b")


def main(root):
    root = Path(root)
    bad = []
    for top in SCANNED:
        for f in sorted((root / top).rglob("*.rs")):
            rel = f.relative_to(root).as_posix()
            if any(rel.startswith(a) for a in ALLOWED):
                continue
            for n, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("//", 1)[0]
                if WIRE.search(code):
                    bad.append(f"{rel}:{n}: {line.strip()}")
    for line in bad:
        print(f"wire type outside the edge: {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
