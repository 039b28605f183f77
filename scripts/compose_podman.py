#!/usr/bin/env python3
"""Runs a compose stack with plain `podman` commands derived from the compose files.

Why not podman-compose: Debian 12's podman-compose (1.0.3) starts services without waiting for
`condition: service_healthy`, and podman 4.3 runs health checks only from systemd timers, which a
container or CI machine may not have. This script reads the same files a Docker user gives to
`docker compose` (merged in order, as compose does), prints every podman command it runs, waits
for health by running each check itself, and understands exactly the keys deploy/compose*.yaml
use; any other key is an error naming it, so the files cannot silently drift from what is tested.

  compose_podman.py -f deploy/compose.yaml -f deploy/compose.cpu.yaml up [SERVICE...]
  compose_podman.py -f ... down [--volumes]
  compose_podman.py -f ... scale SERVICE N  # replicas 2..N of SERVICE (same alias), each waited
                                            # for until healthy, as `docker compose --scale`
  compose_podman.py -f ... healthy SERVICE [--replica K]   # wait until that container is healthy
  compose_podman.py -f ... name SERVICE [--replica K]      # the container's name
  compose_podman.py -f ... network NET      # the podman network's name
  compose_podman.py -f ... volume VOL       # the podman volume's name

Environment: PUBLISH_ADDRESS (default 127.0.0.1) is the host address published ports bind to.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import yaml

SERVICE_KEYS = {
    "image", "build", "command", "environment", "env_file", "volumes", "expose", "ports",
    "networks", "healthcheck", "restart", "secrets", "read_only", "user", "depends_on",
    "tmpfs", "shm_size", "stop_grace_period",
}


def merge(base, over, path=""):
    """Compose's merge: mappings key by key; volumes by target; other lists and scalars replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, f"{path}.{k}") if k in base else v
        return out
    if path.endswith(".volumes") and isinstance(base, list) and isinstance(over, list):
        by_target = {v.split(":")[1]: v for v in base}
        by_target.update({v.split(":")[1]: v for v in over})
        return list(by_target.values())
    return over


def load(files):
    merged = {}
    for f in files:
        with open(f) as fh:
            merged = merge(merged, yaml.safe_load(fh) or {})
    return merged


def seconds(v):
    """'10s', '1m30s', '250ms' or a number -> seconds (float)."""
    if isinstance(v, (int, float)):
        return float(v)
    total = 0.0
    for n, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", str(v)):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def podman(args, check=True, capture=False):
    print("+ podman " + " ".join(args), flush=True)
    r = subprocess.run(["podman"] + args, text=True, capture_output=capture)
    if check and r.returncode != 0:
        sys.exit(f"compose_podman: podman {args[0]} failed ({r.returncode}){': ' + r.stderr if capture else ''}")
    return r


class Stack:
    def __init__(self, files):
        self.files = files
        self.dir = os.path.dirname(os.path.abspath(files[0]))
        self.c = load(files)
        self.project = self.c.get("name") or os.path.basename(self.dir)
        for name, s in self.c["services"].items():
            unknown = set(s) - SERVICE_KEYS
            if unknown:
                sys.exit(f"compose_podman: service '{name}': key(s) {sorted(unknown)} not understood; "
                         f"expected only {sorted(SERVICE_KEYS)}")

    def name(self, service, replica=None):
        return f"{self.project}_{service}" + (f"_{replica}" if replica and replica > 1 else "")

    def net(self, network):
        return f"{self.project}_{network}"

    def vol(self, volume):
        return f"{self.project}_{volume}"

    def path(self, p):
        return os.path.normpath(os.path.join(self.dir, p))

    def order(self, wanted):
        done, out = set(), []

        def visit(s):
            if s in done:
                return
            done.add(s)
            for d in (self.c["services"][s].get("depends_on") or {}):
                visit(d)
            out.append(s)

        for s in wanted or list(self.c["services"]):
            if s not in self.c["services"]:
                sys.exit(f"compose_podman: no service '{s}' in {self.files}")
            visit(s)
        return out

    def exists(self, kind, name):
        return subprocess.run(["podman", kind, "exists", name]).returncode == 0

    def up(self, wanted):
        for n, spec in (self.c.get("networks") or {}).items():
            if not self.exists("network", self.net(n)):
                podman(["network", "create"] + (["--internal"] if (spec or {}).get("internal") else [])
                       + [self.net(n)])
        for v in (self.c.get("volumes") or {}):
            if not self.exists("volume", self.vol(v)):
                podman(["volume", "create", self.vol(v)])
        for s in self.order(wanted):
            ctr = self.name(s)
            if subprocess.run(["podman", "container", "exists", ctr]).returncode == 0:
                running = podman(["inspect", "--format", "{{.State.Running}}", ctr], capture=True).stdout.strip()
                if running == "true":
                    continue
                podman(["rm", "-f", ctr])
            for dep, cond in (self.c["services"][s].get("depends_on") or {}).items():
                if cond.get("condition") == "service_healthy":
                    self.wait_healthy(dep)
            podman(["run", "-d"] + self.run_args(s))

    def scale(self, s, n):
        for k in range(2, n + 1):
            ctr = self.name(s, k)
            if not self.exists("container", ctr):
                podman(["run", "-d"] + self.run_args(s, k))
        for k in range(2, n + 1):
            self.wait_healthy(s, k)

    def run_args(self, s, replica=None):
        spec = self.c["services"][s]
        a = ["--name", self.name(s, replica)]
        nets = spec.get("networks") or []
        for n in nets:
            a += ["--network", f"{self.net(n)}:alias={s}"]
        if spec.get("user"):
            a += ["--user", str(spec["user"])]
        if spec.get("read_only"):
            a += ["--read-only"]
        for t in spec.get("tmpfs") or []:
            a += ["--tmpfs", t]
        if spec.get("shm_size"):
            a += ["--shm-size", str(spec["shm_size"])]
        if spec.get("stop_grace_period"):
            a += ["--stop-timeout", str(int(seconds(spec["stop_grace_period"])))]
        for f in spec.get("env_file") or []:
            a += ["--env-file", self.path(f)]
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for k, v in env.items():
            a += ["--env", f"{k}={v}"]
        for v in spec.get("volumes") or []:
            src, rest = v.split(":", 1)
            src = self.path(src) if src.startswith((".", "/")) else self.vol(src)
            a += ["--volume", f"{src}:{rest}"]
        for sec in spec.get("secrets") or []:
            f = self.c["secrets"][sec]["file"]
            a += ["--volume", f"{self.path(f)}:/run/secrets/{sec}:ro"]
        publish = os.environ.get("PUBLISH_ADDRESS", "127.0.0.1")
        for p in spec.get("ports") or []:
            a += ["--publish", f"{publish}:{p}"]
        hc = spec.get("healthcheck")
        if hc:
            test = hc["test"]
            cmd = json.dumps(test[1:]) if test[0] == "CMD" else test[1]
            a += ["--health-cmd", cmd,
                  # Without systemd podman cannot run the check on a timer (it would only log
                  # errors); wait_healthy runs it itself.
                  "--health-interval", f"{int(seconds(hc.get('interval', '30s')))}s"
                  if os.path.exists("/run/systemd/private") else "disable",
                  "--health-timeout", f"{int(seconds(hc.get('timeout', '30s')))}s",
                  "--health-retries", str(hc.get("retries", 3)),
                  "--health-start-period", f"{int(seconds(hc.get('start_period', '0s')))}s"]
        a.append(spec["image"])
        if spec.get("command"):
            a += [str(x) for x in spec["command"]]
        return a

    def wait_healthy(self, s, replica=None):
        """Runs the service's health check until it passes: within start_period + retries x
        (interval + timeout), as a compose engine would allow."""
        hc = self.c["services"][s]["healthcheck"]
        budget = seconds(hc.get("start_period", 0)) + hc.get("retries", 3) * (
            seconds(hc.get("interval", 30)) + seconds(hc.get("timeout", 30)))
        deadline = time.monotonic() + budget
        ctr = self.name(s, replica)
        started = time.monotonic()
        while True:
            r = subprocess.run(["podman", "healthcheck", "run", ctr], capture_output=True, text=True)
            if r.returncode == 0:
                print(f"compose_podman: {ctr} healthy after {time.monotonic() - started:.0f} s", flush=True)
                return
            state = subprocess.run(["podman", "inspect", "--format", "{{.State.Status}}", ctr],
                                   capture_output=True, text=True).stdout.strip()
            if state not in ("running", "created"):
                logs = subprocess.run(["podman", "logs", "--tail", "30", ctr], capture_output=True, text=True)
                sys.exit(f"compose_podman: {s} is {state or 'gone'} before it was healthy:\n"
                         f"{logs.stdout}{logs.stderr}")
            if time.monotonic() > deadline:
                sys.exit(f"compose_podman: {s} not healthy within {budget:.0f} s: {r.stdout}{r.stderr}")
            time.sleep(1)

    def down(self, volumes):
        names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"],
                               capture_output=True, text=True).stdout.split()
        for s in reversed(self.order([])):
            base = self.name(s)
            for ctr in [n for n in names if n == base or re.fullmatch(re.escape(base) + r"_[0-9]+", n)]:
                podman(["stop", ctr], check=False)
                podman(["rm", "-f", ctr], check=False)
        for n in (self.c.get("networks") or {}):
            if self.exists("network", self.net(n)):
                podman(["network", "rm", "-f", self.net(n)], check=False)
        if volumes:
            for v in (self.c.get("volumes") or {}):
                if self.exists("volume", self.vol(v)):
                    podman(["volume", "rm", "-f", self.vol(v)], check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", dest="files", action="append", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("services", nargs="*")
    down = sub.add_parser("down")
    down.add_argument("--volumes", action="store_true")
    sc = sub.add_parser("scale")
    sc.add_argument("service")
    sc.add_argument("replicas", type=int)
    for cmd in ("name", "healthy"):
        c = sub.add_parser(cmd)
        c.add_argument("service")
        c.add_argument("--replica", type=int)
    sub.add_parser("network").add_argument("network")
    sub.add_parser("volume").add_argument("volume")
    a = p.parse_args()
    st = Stack(a.files)
    if a.cmd == "up":
        st.up(a.services)
    elif a.cmd == "down":
        st.down(a.volumes)
    elif a.cmd == "scale":
        st.scale(a.service, a.replicas)
    elif a.cmd == "healthy":
        st.wait_healthy(a.service, a.replica)
    elif a.cmd == "name":
        print(st.name(a.service, a.replica))
    elif a.cmd == "network":
        print(st.net(a.network))
    elif a.cmd == "volume":
        print(st.vol(a.volume))


if __name__ == "__main__":
    main()
