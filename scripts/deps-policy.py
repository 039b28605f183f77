#!/usr/bin/env python3
"""The dependency policy of deny.toml, checked offline from `cargo metadata --locked`.

What `cargo deny check licenses bans sources` checks, for the crates this workspace builds
(every target platform, as cargo-deny does by default):
  licenses  every crate's SPDX expression is satisfied by deny.toml's `allow` list, or by its
            `[[licenses.exceptions]]` for that crate; a crate without a license field fails;
  bans      no crate of `bans.deny` is in the graph; no registry dependency with version "*";
  sources   every crate comes from an allowed registry (or is a path crate of this workspace);
            no git sources unless allowed.
An exception crate (MPL-2.0: fallbacksrc) must also be named, at its locked version, in
deploy/NOTICE, which the images ship next to the library.

Exit 0 when the policy holds; 1, with one line per violation, when not.
`--self-test` checks the SPDX evaluator on known expressions.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tokens(expr):
    # Legacy "A/B" means "A OR B" (crates.io accepted it before SPDX).
    expr = expr.replace("/", " OR ")
    return re.findall(r"\(|\)|[A-Za-z0-9.+\-]+", expr)


def satisfied(expr, allowed):
    """Whether an SPDX expression is satisfied by the licenses in `allowed` (a set of
    identifiers, where "X WITH Y" is one identifier)."""
    toks = tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        tok = peek()
        pos += 1
        return tok

    def primary():
        if peek() == "(":
            take()
            v = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return v
        lic = take()
        if lic is None or lic in ("AND", "OR", "WITH", ")"):
            raise ValueError(f"bad license expression {expr!r}")
        if peek() == "WITH":
            take()
            lic = f"{lic} WITH {take()}"
        return lic.rstrip("+") in allowed or lic in allowed

    def conjunction():
        v = primary()
        while peek() == "AND":
            take()
            v = primary() and v
        return v

    def disjunction():
        v = conjunction()
        while peek() == "OR":
            take()
            v = conjunction() or v
        return v

    v = disjunction()
    if pos != len(toks):
        raise ValueError(f"trailing text in license expression {expr!r}")
    return v


def self_test():
    allow = {"MIT", "Apache-2.0", "ISC", "Apache-2.0 WITH LLVM-exception"}
    cases = [
        ("MIT", True),
        ("MIT OR Apache-2.0", True),
        ("MIT/Apache-2.0", True),
        ("GPL-3.0", False),
        ("MIT AND GPL-3.0", False),
        ("GPL-3.0 OR MIT", True),
        ("(MIT OR Apache-2.0) AND Unicode-3.0", False),
        ("(MIT OR Apache-2.0) AND ISC", True),
        ("Apache-2.0 WITH LLVM-exception", True),
        ("GPL-2.0 WITH Classpath-exception-2.0", False),
        ("Apache-2.0 AND (GPL-2.0 OR ISC)", True),
    ]
    for expr, want in cases:
        got = satisfied(expr, allow)
        assert got == want, f"{expr}: {got}, expected {want}"
    for bad in ["MIT OR", "(MIT", "MIT)"]:
        try:
            satisfied(bad, allow)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    print(f"deps-policy: self-test: {len(cases)} expressions evaluated as expected")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    policy = tomllib.loads((ROOT / "deny.toml").read_text())
    allowed = set(policy["licenses"]["allow"])
    exceptions = {e["crate"]: set(e["allow"]) for e in policy["licenses"].get("exceptions", [])}
    banned = {b["crate"] for b in policy["bans"].get("deny", [])}
    registries = {"registry+" + r for r in policy["sources"].get("allow-registry", [])}
    gits = set(policy["sources"].get("allow-git", []))
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    # The crates the workspace resolves (its packages and everything they pull in).
    resolved = {n["id"] for n in meta["resolve"]["nodes"]}
    packages = [p for p in meta["packages"] if p["id"] in resolved]
    notice = (ROOT / "deploy" / "NOTICE").read_text()
    problems = []
    for p in packages:
        name, version, lic = p["name"], p["version"], p.get("license")
        at = f"{name} {version}"
        if not lic:
            problems.append(f"licenses: {at}: no license field")
        elif not satisfied(lic, allowed | exceptions.get(name, set())):
            problems.append(f"licenses: {at}: {lic!r} is not allowed by deny.toml")
        if name in exceptions and f"{name} {version}" not in notice:
            problems.append(f"licenses: {at}: allowed as an exception, but deploy/NOTICE does not name it at this version")
        if name in banned:
            problems.append(f"bans: {at} is banned by deny.toml")
        for d in p["dependencies"]:
            # A version of "*" from a registry (path dependencies between our own unpublished
            # crates carry none: deny.toml's allow-wildcard-paths).
            if d["req"] == "*" and d.get("source") and not d.get("path"):
                problems.append(f"bans: {at}: wildcard version for {d['name']}")
        src = p["source"]
        if src is None:
            continue
        if src.startswith("git+"):
            if not any(src[4:].startswith(g) for g in gits):
                problems.append(f"sources: {at}: git source {src} is not allowed")
        elif src not in registries:
            problems.append(f"sources: {at}: registry {src} is not allowed")
    for name in exceptions:
        if not any(p["name"] == name for p in packages):
            problems.append(f"licenses: the exception for {name} matches no crate (remove it)")
    for line in problems:
        print(f"deps-policy: {line}")
    print(
        f"deps-policy: {len(packages)} crates, {len(problems)} violations "
        f"(licenses, bans, sources of deny.toml)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
