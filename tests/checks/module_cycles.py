#!/usr/bin/env python3
"""Finds dependency cycles between the top-level modules of each crate.

A module depends on another when its files name it: `crate::other`, `use
crate::{other, ...}`, or `super::other` from a file one level down. Cycles
between crates cargo already refuses; this looks inside each crate, where a
cycle means two modules can be neither understood nor tested apart.

Usage: module_cycles.py CRATE_SRC_DIR... ; prints each cycle and exits 1 if any.
"""

import re
import sys
from pathlib import Path

USE_GROUP = re.compile(r"use\s+crate::\{([^;]*)\}", re.S)
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def top_module(src: Path, file: Path):
    rel = file.relative_to(src).parts
    if len(rel) == 1:
        name = rel[0][:-3]
        return None if name in ("lib", "main") else name
    return rel[0]


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def names_in_group(group: str):
    # `use crate::{a, b::c, d::{e, f}}`: the first segment of each item.
    depth, item, items = 0, "", []
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    for item in items:
        first = item.strip().split("::")[0].strip()
        if re.fullmatch(r"[a-z_][a-z0-9_]*", first):
            yield first


def graph(src: Path):
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts[:1]]
    modules = {m for f in files if (m := top_module(src, f))}
    edges = {m: set() for m in modules}
    for f in files:
        here = top_module(src, f)
        if here is None:
            continue
        text = strip_comments(f.read_text())
        # `#[cfg(test)] mod tests` may use anything: tests are not layers.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
        named = set(PATH.findall(text))
        for group in USE_GROUP.findall(text):
            named.update(names_in_group(group))
        depth = len(f.relative_to(src).parts)
        if depth == 2 and f.name not in ("mod.rs",):
            named.update(re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", text))
        for other in named & modules:
            if other != here:
                edges[here].add(other)
    return edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(dirs):
    found = False
    for d in dirs:
        src = Path(d)
        for component in cycles(graph(src)):
            found = True
            print(f"{src}: modules depend on each other in a cycle: {', '.join(component)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
