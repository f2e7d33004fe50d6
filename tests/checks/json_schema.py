#!/usr/bin/env python3
"""Holds CLI documents to cli/schema.json with a maintained validator
(`jsonschema`, Draft 2020-12, formats checked) and checks each `-o yaml`
twin parses (PyYAML) to the same document.

Reads JSON from stdin: [{"command": "deploy", "json": "...", "yaml": "..."}, ...].
Prints one line per problem; exits 1 if any.
"""

import json
import sys

import jsonschema
import yaml


def main(schema_path):
    schema = json.load(open(schema_path))
    jsonschema.Draft202012Validator.check_schema(schema)
    commands = schema["$defs"]["commands"]["properties"]
    problems = []
    for case in json.load(sys.stdin):
        command = case["command"]
        if command not in commands:
            problems.append(f"{command}: not in the schema's commands")
            continue
        try:
            document = json.loads(case["json"])
        except ValueError as e:
            problems.append(f"{command}: not JSON ({e})")
            continue
        sub = dict(commands[command])
        sub["$defs"] = schema["$defs"]
        validator = jsonschema.Draft202012Validator(
            sub, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        for error in validator.iter_errors(document):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{command}: at /{path}: {error.message}")
        if case.get("yaml") is not None:
            if yaml.safe_load(case["yaml"]) != document:
                problems.append(f"{command}: -o yaml is not the same document as -o json")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
