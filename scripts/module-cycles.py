#!/usr/bin/env python3
"""Import circles between the modules of each crate: which module names which (`crate::a::b`,
`super::x`, `self::` paths in `use` lines and in code), and every cycle among them. Exits 1 on a
cycle. Tests (`tests.rs`, `*_tests.rs`, `fixtures.rs`) and a module's own children are left out:
a parent naming its child, or a test naming what it tests, is no circle."""
import os
import re
import sys

CRATES = {"client": "client/src", "plugins": "plugins/src", "proxy": "proxy/src",
          "proxy-core": "proxy-core/src",
          "pipelines": "pipelines/src", "endpoint": "endpoint/src", "proto": "proto/src"}
TEST = re.compile(r"(^|/)(tests|[a-z_]*_tests|fixtures|pool_tests)\.rs$")


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def resolve(mod, path, modules):
    """The longest known module that `path` (a::b::c from `mod`) names."""
    parts = path.split("::")
    base = list(mod)
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] == "self":
        parts = parts[1:]
    else:
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    full = base + parts
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in modules:
            return tuple(full[:n])
    return None


def main():
    bad = 0
    for crate, root in CRATES.items():
        files = {}
        for d, _, fs in os.walk(root):
            for f in fs:
                p = os.path.join(d, f)
                if f.endswith(".rs") and not TEST.search(os.path.relpath(p, root)):
                    files[module_of(root, p)] = open(p).read()
        modules = set(files)
        edges = {m: set() for m in modules}
        for m, text in files.items():
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
            text = re.sub(r"//.*", "", text)
            for path in re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text):
                t = resolve(m, path, modules)
                # A module and its own descendants/ancestors are one unit here.
                if t and t != m and t[: len(m)] != m and m[: len(t)] != t:
                    edges[m].add(t)
        # Cycles: strongly connected components with more than one module.
        index, low, stack, on, comps, i = {}, {}, [], set(), [], [0]

        def visit(v):
            index[v] = low[v] = i[0]
            i[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)

        sys.setrecursionlimit(10000)
        for v in sorted(modules):
            if v not in index:
                visit(v)
        for c in comps:
            bad += 1
            names = sorted("::".join(x) or "(root)" for x in c)
            print(f"{crate}: import circle among {', '.join(names)}")
    if bad:
        sys.exit(1)
    print("no import circles between modules")


if __name__ == "__main__":
    main()
