"""Static checks of deploy/ (no Docker engine or cluster needed): yamllint on all YAML, Kubernetes
schemas (kubernetes-validate), compose schema (check-jsonschema's compose-spec), hadolint on the
Dockerfiles, and NetworkPolicy/Service selectors against the pods they are meant to match. Every
validator is also shown to fail on a deliberately broken copy.

Run: .venv-tools/bin/python -m unittest deploy/test_deploy.py (scripts/test.sh does)."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def tool(name, *args, cwd=HERE):
    return subprocess.run([os.path.join(BIN, name), *args], cwd=cwd, capture_output=True, text=True)


def broken_copy(path, old, new):
    """A copy of deploy/ in a temp dir with one file edited."""
    tmp = tempfile.mkdtemp(prefix="deploy-broken-")
    dst = os.path.join(tmp, "deploy")
    shutil.copytree(HERE, dst)
    target = os.path.join(dst, path)
    text = open(target).read()
    assert old in text, f"{old!r} not in {path}"
    open(target, "w").write(text.replace(old, new, 1))
    return dst


def manifests():
    """The Kubernetes manifests (kustomization.yaml is kustomize's, not Kubernetes')."""
    return [
        f
        for f in sorted(glob.glob(os.path.join(HERE, "k8s", "*.yaml")))
        if os.path.basename(f) != "kustomization.yaml"
    ]


def docs():
    out = []
    for f in manifests():
        out += [d for d in yaml.safe_load_all(open(f)) if d]
    return out


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


class Validators(unittest.TestCase):
    def test_yamllint(self):
        r = tool("yamllint", "-c", ".yamllint.yaml", ".")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = broken_copy("compose.yaml", "  triton:\n", "  triton:\n   bad_indent: 1\n")
        r = tool("yamllint", "-c", ".yamllint.yaml", ".", cwd=bad)
        self.assertNotEqual(r.returncode, 0, "yamllint accepted broken YAML")

    def test_kustomization_lists_every_manifest(self):
        k = yaml.safe_load(open(os.path.join(HERE, "k8s", "kustomization.yaml")))
        self.assertEqual(k["kind"], "Kustomization")
        self.assertEqual(sorted(k["resources"]), [os.path.basename(f) for f in manifests()])

    def test_kubernetes_schemas(self):
        files = manifests()
        r = tool("kubernetes-validate", "--strict", *files)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = broken_copy("k8s/30-proxy.yaml", "containerPort: 50051", "containerPort: fifty")
        r = tool("kubernetes-validate", "--strict", os.path.join(bad, "k8s", "30-proxy.yaml"))
        self.assertNotEqual(r.returncode, 0, "a string containerPort passed")
        bad = broken_copy("k8s/20-triton.yaml", "replicas: 2", "replicas: 2\n  replicaz: 2")
        r = tool("kubernetes-validate", "--strict", os.path.join(bad, "k8s", "20-triton.yaml"))
        self.assertNotEqual(r.returncode, 0, "an unknown field passed")

    def test_compose_schema(self):
        r = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = broken_copy("compose.yaml", "condition: service_healthy", "condition: service_ready_maybe")
        r = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml", cwd=bad)
        self.assertNotEqual(r.returncode, 0, "an invalid depends_on condition passed")

    def test_compose_cpu_override(self):
        r = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.cpu.yaml")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cpu = yaml.safe_load(open(os.path.join(HERE, "compose.cpu.yaml")))
        self.assertEqual(cpu["services"]["triton"]["build"]["dockerfile"], "deploy/Dockerfile.triton-cpu")

    def test_only_the_proxy_shares_tritons_network(self):
        c = yaml.safe_load(open(os.path.join(HERE, "compose.yaml")))
        self.assertTrue(c["networks"]["backend"]["internal"])
        on_backend = sorted(n for n, s in c["services"].items() if "backend" in (s.get("networks") or []))
        self.assertEqual(on_backend, ["proxy", "triton"])

    def test_compose_publishes_only_the_proxy(self):
        c = yaml.safe_load(open(os.path.join(HERE, "compose.yaml")))
        published = [name for name, s in c["services"].items() if s.get("ports")]
        self.assertEqual(published, ["proxy"])
        for name, s in c["services"].items():
            for dep in (s.get("depends_on") or {}).values():
                self.assertEqual(dep["condition"], "service_healthy", name)
        self.assertNotIn("GRPC_EXPECT_API_KEY", str(c), "credentials must come from a secret/env file")

    def test_dockerfiles(self):
        files = sorted(glob.glob(os.path.join(HERE, "Dockerfile.*")))
        self.assertEqual(len(files), 4)
        r = tool("hadolint", "--config", ".hadolint.yaml", *files)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = broken_copy("Dockerfile.proxy", "USER 10001", "RUN cd /tmp && echo hi\nUSER 10001")
        r = tool("hadolint", "--config", ".hadolint.yaml", "Dockerfile.proxy", cwd=bad)
        self.assertNotEqual(r.returncode, 0, "hadolint accepted 'RUN cd'")
        proxy = open(os.path.join(HERE, "Dockerfile.proxy")).read()
        self.assertIn("USER 10001", proxy)
        self.assertIn("--health-check", proxy)
        # The pipeline image links fallbacksrc (MPL-2.0): its notice ships next to the library.
        pipeline = open(os.path.join(HERE, "Dockerfile.pipeline")).read()
        self.assertIn("COPY deploy/NOTICE /usr/share/doc/gst-triton/NOTICE", pipeline)
        self.assertIn("MPL-2.0", open(os.path.join(HERE, "NOTICE")).read())


class Policies(unittest.TestCase):
    def setUp(self):
        self.docs = docs()
        self.pods = {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in self.docs
            if d["kind"] == "Deployment"
        }
        self.policies = {d["metadata"]["name"]: d["spec"] for d in self.docs if d["kind"] == "NetworkPolicy"}

    def selected(self, selector):
        return sorted(name for name, labels in self.pods.items() if matches(selector, labels))

    def test_default_deny(self):
        d = self.policies["default-deny"]
        self.assertEqual(d["podSelector"], {})
        self.assertEqual(sorted(d["policyTypes"]), ["Egress", "Ingress"])
        self.assertNotIn("ingress", d)
        self.assertNotIn("egress", d)

    def test_triton_reachable_only_from_proxy_and_monitoring(self):
        p = self.policies["triton-ingress"]
        self.assertEqual(self.selected(p["podSelector"]), ["triton"])
        grpc, metrics = p["ingress"]
        self.assertEqual([x["port"] for x in grpc["ports"]], [8001])
        self.assertEqual([self.selected(f["podSelector"]) for f in grpc["from"]], [["triton-proxy"]])
        self.assertEqual([x["port"] for x in metrics["ports"]], [8002])
        self.assertEqual(metrics["from"], [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])

    def test_proxy_reachable_only_from_labelled_clients(self):
        p = self.policies["proxy-ingress"]
        self.assertEqual(self.selected(p["podSelector"]), ["triton-proxy"])
        grpc = p["ingress"][0]
        self.assertEqual([x["port"] for x in grpc["ports"]], [50051])
        pod_sel = grpc["from"][0]["podSelector"]
        self.assertEqual(self.selected(pod_sel), ["camera-001"], "client pods, and only them")
        self.assertEqual(grpc["from"][1]["namespaceSelector"], {"matchLabels": {"gst-triton/client": "true"}})

    def test_egress_allows_exactly_the_paths_needed(self):
        p = self.policies["proxy-egress"]
        self.assertEqual(self.selected(p["egress"][0]["to"][0]["podSelector"]), ["triton"])
        c = self.policies["client-egress"]
        self.assertEqual(self.selected(c["podSelector"]), ["camera-001"])
        self.assertEqual(self.selected(c["egress"][0]["to"][0]["podSelector"]), ["triton-proxy"])

    def test_policy_ports_exist_on_the_pods(self):
        ports = {}
        for d in self.docs:
            if d["kind"] == "Deployment":
                ports[d["metadata"]["name"]] = {
                    p["containerPort"] for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
                }
        for name in ("triton-ingress", "proxy-ingress"):
            p = self.policies[name]
            for target in self.selected(p["podSelector"]):
                for rule in p["ingress"]:
                    for port in rule["ports"]:
                        self.assertIn(port["port"], ports[target], f"{name}: {target} has no port {port['port']}")

    def test_services_select_their_deployments(self):
        for d in self.docs:
            if d["kind"] == "Service":
                sel = {"matchLabels": d["spec"]["selector"]}
                self.assertEqual(self.selected(sel), [d["metadata"]["name"]], d["metadata"]["name"])

    def test_every_pod_runs_unprivileged_read_only_and_without_api_token(self):
        for d in self.docs:
            if d["kind"] != "Deployment":
                continue
            name, pod = d["metadata"]["name"], d["spec"]["template"]["spec"]
            self.assertIs(pod.get("automountServiceAccountToken"), False, name)
            sec = pod.get("securityContext", {})
            self.assertIs(sec.get("runAsNonRoot"), True, name)
            self.assertGreater(sec.get("runAsUser", 0), 0, name)
            self.assertEqual(sec.get("seccompProfile"), {"type": "RuntimeDefault"}, name)
            for c in pod["containers"]:
                cs = c.get("securityContext", {})
                self.assertIs(cs.get("readOnlyRootFilesystem"), True, (name, c["name"]))
                self.assertIs(cs.get("allowPrivilegeEscalation"), False, (name, c["name"]))
                self.assertEqual(cs.get("capabilities", {}).get("drop"), ["ALL"], (name, c["name"]))
        triton = open(os.path.join(HERE, "Dockerfile.triton")).read()
        self.assertIn("\nUSER 1000", triton)

    def test_camera_uris_come_from_secrets_and_rtsp_only_to_the_camera_cidr(self):
        for d in self.docs:
            if d["kind"] != "Deployment":
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if e["name"] in ("VIDEO_PATH", "CAMERA_URI"):
                        self.assertIn("secretKeyRef", e.get("valueFrom", {}), e)
                    self.assertNotIn("rtsp://", str(e.get("value", "")), e)
        rtsp = [r for r in self.policies["client-egress"]["egress"] if any(p["port"] == 554 for p in r.get("ports", []))]
        self.assertEqual(len(rtsp), 1)
        cidrs = [t["ipBlock"]["cidr"] for t in rtsp[0].get("to", [])]
        self.assertEqual(len(cidrs), 1, rtsp)
        self.assertNotEqual(cidrs[0], "0.0.0.0/0")

    def test_probes_and_limits(self):
        for d in self.docs:
            if d["kind"] != "Deployment":
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                self.assertIn("limits", c["resources"], c["name"])
                self.assertIn("requests", c["resources"], c["name"])
                if d["metadata"]["name"] in ("triton", "triton-proxy"):
                    self.assertIn("grpc", c["readinessProbe"], c["name"])

    def test_scaling_out(self):
        """Triton behind a headless Service the proxy resolves; PDBs and the HPA hit real targets."""
        by = {(d["kind"], d["metadata"]["name"]): d for d in self.docs}
        svc = by[("Service", "triton")]["spec"]
        self.assertEqual(svc.get("clusterIP"), "None", "Triton's Service must be headless")
        proxy = by[("Deployment", "triton-proxy")]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in proxy["env"]}
        host, port = env["TRITON_URL"].rsplit(":", 1)
        self.assertEqual(host, "triton")
        self.assertIn(int(port), [p["port"] for p in svc["ports"]])
        self.assertGreater(by[("Deployment", "triton")]["spec"]["replicas"], 1)
        pdbs = [d for d in self.docs if d["kind"] == "PodDisruptionBudget"]
        self.assertEqual(sorted(self.selected(d["spec"]["selector"])[0] for d in pdbs), ["triton", "triton-proxy"])
        for d in pdbs:
            self.assertEqual(len(self.selected(d["spec"]["selector"])), 1, d["metadata"]["name"])
        hpa = by[("HorizontalPodAutoscaler", "triton-proxy")]["spec"]
        target = hpa["scaleTargetRef"]
        self.assertIn(("Deployment", target["name"]), by)
        self.assertIn("cpu", proxy["resources"]["requests"], "CPU utilisation needs a CPU request")
        self.assertLessEqual(hpa["minReplicas"], hpa["maxReplicas"])


if __name__ == "__main__":
    unittest.main()
