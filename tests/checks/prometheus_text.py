#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with prometheus_client's own
parser (what a scraper's client library accepts) and prints every sample as
JSON: [{"name", "labels", "value", "type"}]. Exits 1, naming the problem, if
the text does not parse."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.append(
                    {"name": s.name, "labels": s.labels, "value": s.value, "type": family.type}
                )
    except Exception as e:  # the parser raises ValueError and others
        print(f"not Prometheus text: {e}", file=sys.stderr)
        return 1
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
