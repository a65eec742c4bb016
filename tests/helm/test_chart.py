"""Offline render test of the Helm chart in helm/qlik-failed-polls.

No helm binary exists here: tests/helm/render is a small Go program doing
what `helm template` does (text/template, sprig, Helm's include/tpl/required/
toYaml, values merged as Helm merges them), built in GOPATH mode from Debian's
golang-go, golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v2-dev.
It writes the manifests as YAML (linted with yamllint when installed) and as
JSON, which this test reads; the config files the ConfigMaps carry come
parsed too. The renderer is built once into a private temporary directory and
reused while its source is unchanged, so a run takes a few seconds.

When the build directory holds qs-poller ($QFP_BIN_DIR, set by CTest), the
rendered poller config is also checked by `qs-poller --check_config`.

Every rendered object is validated against Kubernetes' OpenAPI schemas by
validate.js (npm kubernetes-models, pinned by package-lock.json here and
installed into tests/helm/node_modules by scripts/install-deps.sh with
`npm ci`). Without it those tests fail under CI (CI set) and are skipped
elsewhere.

Run from tests/:  /usr/bin/python3 -m unittest -v helm.test_chart
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART = REPO / "helm" / "qlik-failed-polls"
RENDERER_SRC = HERE / "render"
TEST_VALUES = HERE / "values-test.yaml"
METRICS_SCRAPERS_VALUES = HERE / "values-metrics-scrapers.yaml"
NO_NETWORK_POLICY_VALUES = HERE / "values-no-network-policy.yaml"
MTLS_VALUES = HERE / "values-mtls.yaml"
VALIDATOR = HERE / "validate.js"
VALIDATOR_LOCK = HERE / "package-lock.json"
VALIDATE_TIMEOUT = 120
DEBIAN_GOPATH = "/usr/share/gocode"
GO_BUILD_TIMEOUT = 240
RENDER_TIMEOUT = 60

RELEASE = "qfp"
NAMESPACE = "monitoring"
CONFIG_PATH = "/etc/qlik-failed-polls/butler-sos.yaml"
CERT_DIR = "/etc/qlik-failed-polls/certs"
MTLS_DIR = "/etc/qlik-failed-polls/mtls"

# Helm's own style: sequences under a key may or may not be indented (toYaml
# does not indent them, hand-written templates do); Chart.yaml and values.yaml
# start without "---".
YAMLLINT_CONFIG = ("{extends: default, rules: {line-length: {max: 120}, "
                   "document-start: disable, "
                   "indentation: {spaces: 2, indent-sequences: whatever}}}")


class RenderError(Exception):
    pass


def _private_cache_dir() -> Path:
    """A per-user directory under the system temp dir, refused unless it is
    ours and closed to others (the renderer binary is executed from it)."""
    path = Path(tempfile.gettempdir()) / f"qfp-helm-render-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        raise RuntimeError(f"{path} is not a private directory of this user")
    return path


def _go() -> str | None:
    return shutil.which("go") or (
        "/usr/lib/go/bin/go" if os.access("/usr/lib/go/bin/go", os.X_OK)
        else None)


def build_renderer(go: str) -> Path:
    """Builds tests/helm/render unless a binary of the same source exists."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod"):
        digest.update(name.encode() + b"\0" + (RENDERER_SRC / name).read_bytes())
    tag = digest.hexdigest()[:16]
    cache = _private_cache_dir()
    binary = cache / f"render-{tag}"
    if binary.is_file():
        return binary
    # GOPATH mode: the package sits in $GOPATH/src with its go.mod, which lets
    # the go command map sprig's and semver's /v3 import paths to Debian's
    # folders in /usr/share/gocode.
    package = cache / "gopath" / "src" / f"helmrender-{tag}"
    package.mkdir(parents=True, exist_ok=True)
    for name in ("main.go", "go.mod"):
        shutil.copyfile(RENDERER_SRC / name, package / name)
    env = dict(os.environ, GO111MODULE="off", GOPROXY="off", GOFLAGS="",
               GOTOOLCHAIN="local", CGO_ENABLED="0",
               GOPATH=f"{cache / 'gopath'}:{DEBIAN_GOPATH}",
               GOCACHE=str(cache / "gocache"))
    partial = cache / f".render-{tag}.{os.getpid()}"
    result = subprocess.run([go, "build", "-o", str(partial), "."],
                            cwd=package, env=env, capture_output=True,
                            text=True, timeout=GO_BUILD_TIMEOUT)
    if result.returncode != 0:
        raise RenderError(
            "building the offline renderer failed (are golang-go, "
            "golang-github-masterminds-sprig-dev and "
            "golang-gopkg-yaml.v2-dev installed? scripts/install-deps.sh "
            f"installs them):\n{result.stderr}")
    os.replace(partial, binary)  # atomic: a concurrent run sees all or none
    return binary


def render(renderer: Path, *values_files, namespace: str = NAMESPACE,
           kube_version: str = "1.28.0", out_dir: Path) -> dict:
    """Renders the chart; returns the JSON document, with the YAML text under
    "yaml". Raises RenderError with the renderer's message on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_yaml, out_json = out_dir / "manifests.yaml", out_dir / "manifests.json"
    args = [str(renderer), "-chart", str(CHART), "-release", RELEASE,
            "-namespace", namespace, "-kube-version", kube_version,
            "-out-yaml", str(out_yaml), "-out-json", str(out_json)]
    for values in values_files:
        args += ["-f", str(values)]
    result = subprocess.run(args, capture_output=True, text=True,
                            timeout=RENDER_TIMEOUT)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    rendered = json.loads(out_json.read_text())
    rendered["yaml"] = out_yaml
    return rendered


class Rendered:
    """Lookups over one rendering."""

    def __init__(self, data: dict):
        self.data = data
        self.manifests = data["manifests"]
        self.notes = data["notes"]

    def objects(self, kind: str) -> list[dict]:
        return [m["object"] for m in self.manifests
                if m["object"]["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [o for o in self.objects(kind)
                 if o["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind} named {name}; have "
                                 f"{[o['metadata']['name'] for o in self.objects(kind)]}")
        return found[0]

    def config_of(self, configmap_name: str) -> tuple[str, dict]:
        """(text, parsed) of a ConfigMap's butler-sos.yaml."""
        for m in self.manifests:
            obj = m["object"]
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == configmap_name:
                return obj["data"]["butler-sos.yaml"], m["parsedData"]["butler-sos.yaml"]
        raise AssertionError(f"no ConfigMap {configmap_name}")

    def workloads(self) -> list[dict]:
        return self.objects("Deployment") + self.objects("StatefulSet")


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, containers
    return containers[0]


def volume_for_mount(workload: dict, mount_path: str) -> tuple[dict, dict]:
    """(volumeMount, volume or volumeClaimTemplate) behind a mount path."""
    mounts = [m for m in container(workload).get("volumeMounts", [])
              if m["mountPath"] == mount_path]
    assert len(mounts) == 1, f"{mount_path} mounted {len(mounts)} times"
    name = mounts[0]["name"]
    volumes = [v for v in workload["spec"]["template"]["spec"].get("volumes", [])
               if v["name"] == name]
    claims = [c for c in workload["spec"].get("volumeClaimTemplates", [])
              if c["metadata"]["name"] == name]
    assert len(volumes) + len(claims) == 1, f"volume {name}: {volumes} {claims}"
    return mounts[0], (volumes or claims)[0]


def env_of(workload: dict) -> dict:
    return {e["name"]: e for e in container(workload).get("env", [])}


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def full(name: str) -> str:
    return f"{RELEASE}-qlik-failed-polls-{name}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def validator_problem() -> str | None:
    """Why validate.js cannot run here (None: it can): node missing, or the
    npm packages not installed as package-lock.json pins them."""
    if shutil.which("node") is None:
        return ("node is not installed (Debian nodejs; scripts/install-deps.sh "
                "installs it)")
    pinned = json.loads(VALIDATOR_LOCK.read_text())["packages"][
        "node_modules/kubernetes-models"]["version"]
    installed = HERE / "node_modules" / "kubernetes-models" / "package.json"
    have = (json.loads(installed.read_text())["version"]
            if installed.is_file() else None)
    if have != pinned:
        found = f"has {have}" if have else "is not installed"
        return (f"kubernetes-models (npm) {found} in tests/helm/node_modules, "
                f"package-lock.json pins {pinned}: run scripts/install-deps.sh "
                "(npm ci in tests/helm)")
    return None


def require_validator(test: unittest.TestCase) -> None:
    """Fails the test under CI, skips it elsewhere, without the validator."""
    problem = validator_problem()
    if problem is None:
        return
    if _in_ci():
        test.fail(problem)
    test.skipTest(problem)


def validate_objects(path: Path) -> dict:
    """validate.js's answer for a JSON file of manifests or objects."""
    result = subprocess.run(["node", str(VALIDATOR), str(path)],
                            capture_output=True, text=True,
                            timeout=VALIDATE_TIMEOUT)
    if result.returncode not in (0, 1):
        raise AssertionError(f"validate.js exited {result.returncode}: "
                             f"{result.stderr}")
    answer = json.loads(result.stdout)
    failed = any(r["errors"] for r in answer["results"])
    assert failed == (result.returncode == 1), result
    return answer


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector against a label set, as Kubernetes evaluates it."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, op = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels,
              "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


class Client:
    """A would-be connection source: a pod (namespace and labels) or, with
    namespace None, an address outside the cluster."""

    def __init__(self, what: str, namespace: str | None, labels: dict):
        self.what, self.namespace, self.labels = what, namespace, labels

    def __repr__(self):
        return self.what


def peer_admits(peer: dict, client: Client, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return True  # any address, pods included, unless excepted
    if client.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": client.namespace}
        if not selector_matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif client.namespace != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector", {}), client.labels)


def ingress_admits(policies: list[dict], pod_labels: dict, port: dict,
                   client: Client) -> bool:
    """Whether NetworkPolicies let client reach a pod's container port
    (a ports entry: containerPort, name, protocol), as Kubernetes decides:
    a pod no Ingress policy selects admits everything; otherwise some rule
    of a selecting policy must match both the port and the source."""
    selecting = [p for p in policies
                 if selector_matches(p["spec"]["podSelector"], pod_labels)
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            port_ok = not ports or any(
                p.get("protocol", "TCP") == port.get("protocol", "TCP")
                and p.get("port") in (None, port["containerPort"], port.get("name"))
                for p in ports)
            sources = rule.get("from")
            source_ok = not sources or any(
                peer_admits(peer, client, NAMESPACE) for peer in sources)
            if port_ok and source_ok:
                return True
    return False


def setUpModule():
    global RENDERER, TMP
    go = _go()
    if go is None:
        raise unittest.SkipTest(
            "go is not installed (Debian golang-go; scripts/install-deps.sh "
            "installs it): the chart cannot be rendered offline")
    RENDERER = build_renderer(go)
    TMP = tempfile.TemporaryDirectory(prefix="qfp-helm-test-")


def tearDownModule():
    if "TMP" in globals():
        TMP.cleanup()


class ChartChecks:
    """Checks that hold for every rendering; subclasses set VALUES."""

    VALUES: tuple = ()
    rendered: Rendered
    # What the values make of networkPolicy: whether policies exist, and who
    # may scrape metrics (namespaces, and labels the scraping pod carries).
    network_policy = True
    metrics_namespaces: tuple = (NAMESPACE,)
    metrics_pod_labels: dict = {}
    # Whether mtls.enabled: mutual TLS between pollers and tracker.
    mtls = False

    @classmethod
    def setUpClass(cls):
        cls.out = Path(TMP.name) / cls.__name__
        cls.rendered = Rendered(render(RENDERER, *cls.VALUES, out_dir=cls.out))
        cls.values_text = (CHART / "values.yaml").read_text()

    def test_yamllint_accepts_the_manifests(self):
        yamllint = shutil.which("yamllint")
        if yamllint is None:
            self.skipTest("yamllint is not installed (apt install yamllint)")
        result = subprocess.run(
            [yamllint, "--strict", "-d", YAMLLINT_CONFIG,
             str(self.rendered.data["yaml"])],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_workload_runs_locked_down(self):
        for workload in self.rendered.workloads():
            with self.subTest(workload["metadata"]["name"]):
                pod = workload["spec"]["template"]["spec"]
                self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
                self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
                self.assertIs(pod["automountServiceAccountToken"], False)
                self.assertEqual(pod["securityContext"]["seccompProfile"],
                                 {"type": "RuntimeDefault"})
                sc = container(workload)["securityContext"]
                self.assertIs(sc["readOnlyRootFilesystem"], True)
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                # The container's context overrides the pod's: it must not
                # undo it.
                self.assertNotIn("add", sc["capabilities"])
                self.assertIsNot(sc.get("privileged"), True)
                self.assertIsNot(sc.get("runAsNonRoot"), False)
                self.assertNotEqual(sc.get("runAsUser"), 0)
                self.assertNotIn("hostNetwork", pod)
                self.assertIn("resources", container(workload))

    def test_every_object_passes_kubernetes_schemas(self):
        """Kubernetes' OpenAPI schemas, unknown fields refused as the API
        server refuses them."""
        require_validator(self)
        answer = validate_objects(self.out / "manifests.json")
        self.assertEqual(len(answer["results"]), len(self.rendered.manifests))
        for result in answer["results"]:
            with self.subTest(f"{result['kind']} {result['name']}"):
                self.assertEqual(result["errors"], [])

    def clients(self) -> list[Client]:
        """Sources to try against every port: the release's own pods, strangers
        in and out of the namespace, pods impersonating the pollers' labels
        elsewhere, the scrapers the values admit, and the outside world."""
        clients = [Client(w["metadata"]["name"], NAMESPACE,
                          w["spec"]["template"]["metadata"]["labels"])
                   for w in self.rendered.workloads()]
        poller_labels = self.poller_workloads()[0]["spec"]["template"]["metadata"]["labels"]
        clients += [Client("stranger", NAMESPACE, {"app": "stranger"}),
                    Client("outside", None, {}),
                    Client("poller look-alike elsewhere", "elsewhere", dict(poller_labels))]
        for namespace in sorted({*self.metrics_namespaces, "kube-system"}):
            clients.append(Client(f"scraper in {namespace}", namespace,
                                  dict(self.metrics_pod_labels)))
            if namespace != NAMESPACE:  # there, the labels make a poller
                clients.append(Client(f"poller look-alike in {namespace}", namespace,
                                      {**poller_labels, **self.metrics_pod_labels}))
            if self.metrics_pod_labels:
                clients.append(Client(f"unlabelled pod in {namespace}", namespace, {}))
        return clients

    def test_network_policies_admit_only_pollers_and_scrapers(self):
        policies = self.rendered.objects("NetworkPolicy")
        if not self.network_policy:
            self.assertEqual(policies, [])
            return
        pollers = {w["metadata"]["name"] for w in self.poller_workloads()}
        tracker = self.rendered.get("Deployment", full("tracker"))
        for workload in self.rendered.workloads():
            labels = workload["spec"]["template"]["metadata"]["labels"]
            # The declared ports, and one the pod does not declare.
            ports = container(workload).get("ports", []) + [
                {"name": "undeclared", "containerPort": 12345, "protocol": "TCP"}]
            for port in ports:
                admitted = [c.what for c in self.clients()
                            if ingress_admits(policies, labels, port, c)]
                if workload is tracker and port["name"] == "grpc":
                    expected = sorted(pollers)
                elif port["name"] == "metrics":
                    expected = [c.what for c in self.clients()
                                if c.namespace in self.metrics_namespaces
                                and self.metrics_pod_labels.items() <= c.labels.items()]
                else:
                    expected = []
                with self.subTest(workload=workload["metadata"]["name"], port=port["name"]):
                    self.assertEqual(sorted(admitted), sorted(expected))
        # No policy restricts egress: the pods reach Qlik Sense, InfluxDB, DNS.
        for policy in policies:
            self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])

    def test_every_workload_mounts_its_own_config_file(self):
        for workload in self.rendered.workloads():
            with self.subTest(workload["metadata"]["name"]):
                mount, volume = volume_for_mount(workload, CONFIG_PATH)
                self.assertIs(mount["readOnly"], True)
                self.assertEqual(mount["subPath"], "butler-sos.yaml")
                name = volume["configMap"]["name"]
                text, parsed = self.rendered.config_of(name)
                self.assertIn("Butler-SOS", parsed)
                # A config change changes the pod template, so pods roll.
                annotations = workload["spec"]["template"]["metadata"]["annotations"]
                self.assertEqual(annotations["checksum/config"],
                                 hashlib.sha256(text.rstrip("\n").encode()).hexdigest())

    def test_selectors_match_their_pods_and_only_theirs(self):
        workloads = self.rendered.workloads()
        for workload in workloads:
            selector = workload["spec"]["selector"]["matchLabels"]
            for other in workloads:
                labels = other["spec"]["template"]["metadata"]["labels"]
                matches = selector.items() <= labels.items()
                self.assertEqual(matches, other is workload,
                                 f"{workload['metadata']['name']} selecting "
                                 f"{other['metadata']['name']}")

    def test_termination_grace_outlasts_the_shutdown_deadline(self):
        for workload in self.rendered.workloads():
            with self.subTest(workload["metadata"]["name"]):
                args = container(workload)["args"]
                deadline = [int(a.split("=", 1)[1]) for a in args
                            if a.startswith("--shutdown_deadline_ms=")]
                self.assertEqual(len(deadline), 1, args)
                grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                self.assertGreaterEqual(grace * 1000, deadline[0] + 10000)

    def test_pollers_dial_the_tracker_service(self):
        tracker = self.rendered.get("Deployment", full("tracker"))
        pod_labels = tracker["spec"]["template"]["metadata"]["labels"]
        grpc_port = {p["name"]: p["containerPort"]
                     for p in container(tracker)["ports"]}["grpc"]
        _, tracker_config = self.rendered.config_of(full("tracker"))
        self.assertEqual(
            tracker_config["Butler-SOS"]["failedPolls"]["tracker"]["listen"],
            f"0.0.0.0:{grpc_port}")
        service = self.rendered.get("Service", full("tracker"))
        self.assertLessEqual(service["spec"]["selector"].items(), pod_labels.items())
        service_port = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
        self.assertEqual(len(service_port), 1)
        self.assertEqual(service_port[0]["targetPort"], "grpc")
        expected = (f"{full('tracker')}.{NAMESPACE}.svc.{self.cluster_domain}:"
                    f"{service_port[0]['port']}")
        pollers = [w for w in self.rendered.workloads()
                   if w is not tracker]
        self.assertTrue(pollers)
        for poller in pollers:
            with self.subTest(poller["metadata"]["name"]):
                _, volume = volume_for_mount(poller, CONFIG_PATH)
                _, config = self.rendered.config_of(volume["configMap"]["name"])
                failed_polls = config["Butler-SOS"]["failedPolls"]["poller"]
                self.assertEqual(failed_polls["trackerAddress"], expected)
                self.assertNotIn("pollerId", failed_polls)
        self.assertIn(expected, self.rendered.notes)

    def test_each_poller_is_named_after_its_pod(self):
        for poller in self.poller_workloads():
            with self.subTest(poller["metadata"]["name"]):
                self.assertEqual(
                    env_of(poller)["QFP_POLLER_ID"]["valueFrom"],
                    {"fieldRef": {"fieldPath": "metadata.name"}})

    def test_pollers_mount_the_qlik_client_certificate(self):
        for poller in self.poller_workloads():
            with self.subTest(poller["metadata"]["name"]):
                mount, volume = volume_for_mount(poller, CERT_DIR)
                self.assertIs(mount["readOnly"], True)
                self.assertEqual(volume["secret"]["secretName"], "qlik-client-certs")
                # Readable by the non-root user through the pod's fsGroup.
                self.assertEqual(volume["secret"]["defaultMode"], 0o440)
                self.assertEqual(
                    poller["spec"]["template"]["spec"]["securityContext"]["fsGroup"],
                    poller["spec"]["template"]["spec"]["securityContext"]["runAsGroup"])
                _, config = self.rendered.config_of(
                    volume_for_mount(poller, CONFIG_PATH)[1]["configMap"]["name"])
                cert = config["Butler-SOS"]["cert"]
                self.assertEqual(
                    (cert["clientCert"], cert["clientCertKey"], cert["clientCertCA"]),
                    (f"{CERT_DIR}/client.pem", f"{CERT_DIR}/client_key.pem",
                     f"{CERT_DIR}/root.pem"))

    def test_the_tracker_is_a_single_probed_pod(self):
        tracker = self.rendered.get("Deployment", full("tracker"))
        self.assertEqual(tracker["spec"]["replicas"], 1)
        c = container(tracker)
        grpc_port = {p["name"]: p["containerPort"] for p in c["ports"]}["grpc"]
        if self.mtls:
            # The kubelet's gRPC probe speaks no TLS.
            self.assertEqual(c["readinessProbe"]["tcpSocket"]["port"], "grpc")
        else:
            self.assertEqual(c["readinessProbe"]["grpc"]["port"], grpc_port)
        # Liveness must not follow InfluxDB's health, only the process.
        self.assertEqual(c["livenessProbe"]["tcpSocket"]["port"], "grpc")

    def test_writable_directories_are_volumes(self):
        """readOnlyRootFilesystem: the spool and the WAL must be mounts."""
        tracker = self.rendered.get("Deployment", full("tracker"))
        _, config = self.rendered.config_of(full("tracker"))
        wal = config["Butler-SOS"]["failedPolls"]["tracker"]["walDirectory"]
        volume_for_mount(tracker, wal)
        # The queue's cap leaves room for SQLite's own files on the volume.
        self.assertEqual(
            config["Butler-SOS"]["failedPolls"]["tracker"]["walMaxBytes"],
            700 * 1024 * 1024)
        for poller in self.poller_workloads():
            _, volume = volume_for_mount(poller, CONFIG_PATH)
            _, config = self.rendered.config_of(volume["configMap"]["name"])
            spool = config["Butler-SOS"]["failedPolls"]["poller"]["spoolDirectory"]
            volume_for_mount(poller, spool)

    def test_the_poller_accepts_its_rendered_config(self):
        """The real qs-poller reads the rendered file (JSON is YAML) with the
        certificate and spool paths pointed at local ones."""
        binary = Path(os.environ.get("QFP_BIN_DIR") or REPO / "build") / "poller-service" / "qs-poller"
        if not binary.is_file():
            self.skipTest(f"{binary} is not built")
        from support.certs import ensure_pki  # needs python3-cryptography
        work = self.out / "check-config"
        pki = ensure_pki(work / "pki", key_type="ec")
        for poller in self.poller_workloads():
            with self.subTest(poller["metadata"]["name"]):
                _, volume = volume_for_mount(poller, CONFIG_PATH)
                _, shared = self.rendered.config_of(volume["configMap"]["name"])
                config = copy.deepcopy(shared)
                sos = config["Butler-SOS"]
                sos["cert"] = {"clientCert": pki.client_cert,
                               "clientCertKey": pki.client_key,
                               "clientCertCA": pki.root_ca}
                if "spoolDirectory" in sos["failedPolls"]["poller"]:
                    sos["failedPolls"]["poller"]["spoolDirectory"] = str(work / "spool")
                tls = sos["failedPolls"]["poller"]["tls"]
                self.assertIs(tls["enable"], self.mtls)
                if self.mtls:
                    tls.update(certFile=pki.client_cert,
                               keyFile=pki.client_key, caFile=pki.root_ca)
                path = work / f"{poller['metadata']['name']}.json"
                path.write_text(json.dumps(config))
                env = {k: v for k, v in os.environ.items()
                       if not k.startswith("QFP_")}
                if "QFP_POD_IP" in env_of(poller):
                    # cluster.self comes from the downward API's pod IP.
                    result = subprocess.run(
                        [str(binary), "--config", str(path), "--check_config"],
                        capture_output=True, text=True, timeout=30, env=env)
                    self.assertEqual(result.returncode, 2, result.stdout)
                    self.assertIn("cluster.self: missing, and $QFP_POD_IP is not set",
                                  result.stderr)
                    env["QFP_POD_IP"] = "10.244.1.7"
                result = subprocess.run(
                    [str(binary), "--config", str(path), "--check_config"],
                    capture_output=True, text=True, timeout=30, env=env)
                self.assertEqual(result.returncode, 0, result.stderr)
                address = sos["failedPolls"]["poller"]["trackerAddress"]
                self.assertIn(f"tracker {address},", result.stdout)
                self.assertIn("Tracker link: mutual TLS" if self.mtls
                              else "Tracker link: plaintext", result.stdout)

    def test_mtls_keys_follow_the_values(self):
        """One value switches both sides; off, the chart consents to
        plaintext (the services refuse it on a Service address otherwise)
        and mounts nothing."""
        tracker = self.rendered.get("Deployment", full("tracker"))
        _, config = self.rendered.config_of(full("tracker"))
        sides = [(tracker, config["Butler-SOS"]["failedPolls"]["tracker"]["tls"])]
        for poller in self.poller_workloads():
            _, volume = volume_for_mount(poller, CONFIG_PATH)
            _, config = self.rendered.config_of(volume["configMap"]["name"])
            sides.append((poller, config["Butler-SOS"]["failedPolls"]["poller"]["tls"]))
        for workload, tls in sides:
            with self.subTest(workload["metadata"]["name"]):
                mounts = [m["mountPath"] for m in container(workload)["volumeMounts"]]
                if not self.mtls:
                    self.assertEqual(tls, {"enable": False, "allowPlaintext": True})
                    self.assertNotIn(MTLS_DIR, mounts)
                    continue
                self.assertEqual(tls, {
                    "enable": True, "certFile": f"{MTLS_DIR}/tls.crt",
                    "keyFile": f"{MTLS_DIR}/tls.key",
                    "caFile": f"{MTLS_DIR}/ca.crt",
                    "refreshIntervalSeconds": 5})

    def test_each_group_shares_its_servers_through_its_headless_service(self):
        """cluster.peersDns names the group's own headless Service, which
        lists only its ready pods; each pod knows its address among them."""
        workloads = self.rendered.workloads()
        for poller in self.poller_workloads():
            name = poller["metadata"]["name"]
            with self.subTest(name):
                _, volume = volume_for_mount(poller, CONFIG_PATH)
                _, config = self.rendered.config_of(volume["configMap"]["name"])
                cluster = config["Butler-SOS"]["failedPolls"]["poller"]["cluster"]
                self.assertEqual(cluster, {"peersDns": f"{name}.{NAMESPACE}.svc."
                                                       f"{self.cluster_domain}"})
                service = self.rendered.get("Service", name)
                self.assertEqual(service["spec"]["clusterIP"], "None")
                self.assertIs(service["spec"]["publishNotReadyAddresses"], False)
                # Its selector picks this group's pods and no other's.
                for other in workloads:
                    labels = other["spec"]["template"]["metadata"]["labels"]
                    self.assertEqual(
                        selector_matches({"matchLabels": service["spec"]["selector"]},
                                         labels),
                        other is poller, other["metadata"]["name"])
                self.assertEqual(env_of(poller)["QFP_POD_IP"]["valueFrom"],
                                 {"fieldRef": {"fieldPath": "status.podIP"}})
                # Ready means serving /healthz where there is a probe at all.
                probe = container(poller).get("readinessProbe")
                if probe is not None:
                    self.assertEqual(probe["httpGet"], {"path": "/healthz", "port": "metrics"})

    def poller_workloads(self) -> list[dict]:
        return [w for w in self.rendered.workloads()
                if w["metadata"]["labels"]["app.kubernetes.io/component"] == "poller"]


class DefaultValuesTest(ChartChecks, unittest.TestCase):
    """The chart's values.yaml alone."""

    VALUES = ()
    cluster_domain = "cluster.local"

    def test_objects(self):
        kinds = sorted((m["object"]["kind"], m["object"]["metadata"]["name"])
                       for m in self.rendered.manifests)
        self.assertEqual(kinds, sorted([
            ("ConfigMap", full("tracker")),
            ("ConfigMap", full("poller-default")),
            ("Deployment", full("tracker")),
            ("Deployment", full("poller-default")),
            ("Service", full("tracker")),
            ("Service", full("poller")),
            ("Service", full("poller-default")),
            ("NetworkPolicy", full("tracker")),
            ("NetworkPolicy", full("poller")),
        ]))

    def test_poller_group_replicas_come_from_values(self):
        self.assertEqual(self.rendered.get("Deployment", full("poller-default"))["spec"]["replicas"], 1)

    def test_images_default_to_the_app_version(self):
        for workload, image in ((full("tracker"), "qlik-failed-polls/qs-error-tracker"),
                                (full("poller-default"), "qlik-failed-polls/qs-poller")):
            self.assertEqual(container(self.rendered.get("Deployment", workload))["image"],
                             f"{image}:0.1.0")
        self.assertIn('appVersion: "0.1.0"', (CHART / "Chart.yaml").read_text())

    def test_metrics_ports_probes_and_scrape_annotations(self):
        for name in (full("tracker"), full("poller-default")):
            workload = self.rendered.get("Deployment", name)
            _, config = self.rendered.config_of(name)
            section = "tracker" if name == full("tracker") else "poller"
            listen = config["Butler-SOS"]["failedPolls"][section]["metricsListen"]
            ports = {p["name"]: p["containerPort"] for p in container(workload)["ports"]}
            self.assertEqual(ports["metrics"], port_of(listen))
            annotations = workload["spec"]["template"]["metadata"]["annotations"]
            self.assertEqual(annotations["prometheus.io/port"], str(ports["metrics"]))
        poller = self.rendered.get("Deployment", full("poller-default"))
        self.assertEqual(container(poller)["livenessProbe"]["httpGet"],
                         {"path": "/healthz", "port": "metrics"})
        service = self.rendered.get("Service", full("tracker"))
        self.assertEqual(sorted(p["name"] for p in service["spec"]["ports"]),
                         ["grpc", "metrics"])
        self.assertEqual(self.rendered.get("Service", full("poller"))["spec"]["clusterIP"], "None")

    def test_spool_and_wal_are_emptydirs_without_persistence(self):
        tracker = self.rendered.get("Deployment", full("tracker"))
        self.assertEqual(tracker["spec"]["strategy"]["type"], "RollingUpdate")
        self.assertEqual(volume_for_mount(tracker, "/var/lib/qlik-failed-polls/wal")[1]["emptyDir"], {})
        poller = self.rendered.get("Deployment", full("poller-default"))
        self.assertEqual(volume_for_mount(poller, "/var/lib/qlik-failed-polls/spool")[1]["emptyDir"], {})

    def test_no_secret_env_without_secret_names(self):
        self.assertNotIn("env", container(self.rendered.get("Deployment", full("tracker"))))
        self.assertEqual(list(env_of(self.rendered.get("Deployment", full("poller-default")))),
                         ["QFP_POLLER_ID", "QFP_POD_IP"])

    def test_the_users_config_is_passed_through(self):
        _, config = self.rendered.config_of(full("poller-default"))
        self.assertEqual(config["Butler-SOS"]["serversToMonitor"]["servers"][0]["serverName"], "sense1")
        self.assertEqual(config["Butler-SOS"]["serversToMonitor"]["pollingInterval"], 30000)


class TestValuesTest(ChartChecks, unittest.TestCase):
    """tests/helm/values-test.yaml: two poller groups with persistent spools,
    a persistent WAL, secrets, no metrics, the config as text."""

    VALUES = (TEST_VALUES,)
    cluster_domain = "k8s.example.internal"

    def test_objects(self):
        kinds = sorted((m["object"]["kind"], m["object"]["metadata"]["name"])
                       for m in self.rendered.manifests)
        self.assertEqual(kinds, sorted([
            ("ConfigMap", full("tracker")),
            ("ConfigMap", full("poller-apac")),
            ("ConfigMap", full("poller-emea")),
            ("Deployment", full("tracker")),
            ("PersistentVolumeClaim", full("tracker-wal")),
            ("StatefulSet", full("poller-apac")),
            ("StatefulSet", full("poller-emea")),
            ("Service", full("tracker")),
            ("Service", full("poller")),
            ("Service", full("poller-apac")),
            ("Service", full("poller-emea")),
            ("NetworkPolicy", full("tracker")),
            ("NetworkPolicy", full("poller")),
        ]))

    def test_replicas_3_share_the_groups_servers(self):
        emea = self.rendered.get("StatefulSet", full("poller-emea"))
        self.assertEqual(emea["spec"]["replicas"], 3)
        _, config = self.rendered.config_of(full("poller-emea"))
        self.assertEqual(
            config["Butler-SOS"]["failedPolls"]["poller"]["cluster"]["peersDns"],
            f"{full('poller-emea')}.{NAMESPACE}.svc.k8s.example.internal")
        self.assertIn("the replicas of a\ngroup share its servers", self.rendered.notes)

    def test_poller_group_replicas_come_from_values(self):
        self.assertEqual(self.rendered.get("StatefulSet", full("poller-emea"))["spec"]["replicas"], 3)
        self.assertEqual(self.rendered.get("StatefulSet", full("poller-apac"))["spec"]["replicas"], 2)

    def test_persistent_spools_are_per_pod_claims(self):
        for group in ("emea", "apac"):
            sts = self.rendered.get("StatefulSet", full(f"poller-{group}"))
            self.assertEqual(sts["spec"]["serviceName"], full("poller"))
            self.assertEqual(self.rendered.get("Service", full("poller"))["spec"]["clusterIP"], "None")
            _, claim = volume_for_mount(sts, "/var/lib/qlik-failed-polls/spool")
            self.assertEqual(claim["spec"]["resources"]["requests"]["storage"], "2Gi")
            self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])

    def test_persistent_wal_is_a_claim_and_the_tracker_recreates(self):
        tracker = self.rendered.get("Deployment", full("tracker"))
        self.assertEqual(tracker["spec"]["strategy"], {"type": "Recreate"})
        _, volume = volume_for_mount(tracker, "/var/lib/qlik-failed-polls/wal")
        self.assertEqual(volume["persistentVolumeClaim"]["claimName"], full("tracker-wal"))
        pvc = self.rendered.get("PersistentVolumeClaim", full("tracker-wal"))
        self.assertEqual(pvc["spec"]["storageClassName"], "fast")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "5Gi")

    def test_group_config_is_merged_over_the_shared_one(self):
        _, emea = self.rendered.config_of(full("poller-emea"))
        _, apac = self.rendered.config_of(full("poller-apac"))
        self.assertEqual([s["serverName"] for s in emea["Butler-SOS"]["serversToMonitor"]["servers"]],
                         ["sense-emea-1"])
        self.assertEqual([s["serverName"] for s in apac["Butler-SOS"]["serversToMonitor"]["servers"]],
                         ["sense-apac-1", "sense-apac-2"])
        self.assertIs(emea["Butler-SOS"]["appNames"]["enableAppNameExtract"], True)
        self.assertIs(apac["Butler-SOS"]["appNames"]["enableAppNameExtract"], False)
        # Keys of the shared config the chart does not own are kept.
        self.assertEqual(apac["Butler-SOS"]["failedPolls"]["poller"]["requestTimeout"], 7000)
        self.assertEqual(apac["Butler-SOS"]["serversToMonitor"]["pollingInterval"], 30000)
        _, tracker = self.rendered.config_of(full("tracker"))
        self.assertEqual(tracker["Butler-SOS"]["failedPolls"]["tracker"]["flushIntervalMs"], 500)
        self.assertEqual(tracker["Butler-SOS"]["failedPolls"]["tracker"]["listen"], "0.0.0.0:50052")

    def test_secrets_become_environment_variables(self):
        tracker_env = env_of(self.rendered.get("Deployment", full("tracker")))
        self.assertEqual(tracker_env["QFP_INFLUXDB_PASSWORD"]["valueFrom"],
                         {"secretKeyRef": {"name": "influxdb-auth", "key": "admin-password"}})
        self.assertEqual(tracker_env["QFP_INFLUXDB_TOKEN"]["valueFrom"],
                         {"secretKeyRef": {"name": "influxdb-auth", "key": "token"}})
        for group in ("emea", "apac"):
            env = env_of(self.rendered.get("StatefulSet", full(f"poller-{group}")))
            self.assertEqual(env["QFP_CERT_PASSPHRASE"]["valueFrom"],
                             {"secretKeyRef": {"name": "qlik-cert-passphrase", "key": "passphrase"}})
            self.assertNotIn("QFP_INFLUXDB_TOKEN", env)

    def test_metrics_off_leaves_no_trace(self):
        for workload in self.rendered.workloads():
            c = container(workload)
            self.assertNotIn("metrics", [p["name"] for p in c.get("ports", [])])
            self.assertNotIn("prometheus.io/scrape", workload["spec"]["template"]["metadata"]["annotations"])
        for manifest in self.rendered.objects("ConfigMap"):
            self.assertNotIn("metricsListen", manifest["data"]["butler-sos.yaml"])
        self.assertNotIn("livenessProbe", container(self.rendered.get("StatefulSet", full("poller-emea"))))
        self.assertNotIn("readinessProbe", container(self.rendered.get("StatefulSet", full("poller-emea"))))
        self.assertEqual([p["name"] for p in self.rendered.get("Service", full("tracker"))["spec"]["ports"]],
                         ["grpc"])
        self.assertNotIn("ports", self.rendered.get("Service", full("poller"))["spec"])

    def test_termination_grace_follows_the_deadline(self):
        tracker = self.rendered.get("Deployment", full("tracker"))
        self.assertEqual(tracker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 45)


class MetricsScrapersTest(ChartChecks, unittest.TestCase):
    """tests/helm/values-metrics-scrapers.yaml: the defaults, with metrics
    scraped only by Prometheus pods of two other namespaces."""

    VALUES = (METRICS_SCRAPERS_VALUES,)
    cluster_domain = "cluster.local"
    metrics_namespaces = ("prometheus", "observability")
    metrics_pod_labels = {"app.kubernetes.io/name": "prometheus"}

    def test_the_notes_name_the_scraping_namespaces(self):
        self.assertIn("only namespace(s) prometheus, observability to the metrics port",
                      self.rendered.notes)

    def test_the_releases_namespace_is_not_added(self):
        """Only the listed namespaces: the release's own is not among them."""
        tracker = self.rendered.get("NetworkPolicy", full("tracker"))
        metrics_rule = [r for r in tracker["spec"]["ingress"]
                        if r["ports"] == [{"port": 9090, "protocol": "TCP"}]]
        self.assertEqual(len(metrics_rule), 1)
        self.assertEqual(metrics_rule[0]["from"], [{
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "In",
                "values": ["prometheus", "observability"]}]},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }])


class NoNetworkPolicyTest(ChartChecks, unittest.TestCase):
    """tests/helm/values-no-network-policy.yaml: networkPolicy.enabled false,
    for clusters without NetworkPolicy support."""

    VALUES = (NO_NETWORK_POLICY_VALUES,)
    cluster_domain = "cluster.local"
    network_policy = False

    def test_the_notes_do_not_promise_policies(self):
        self.assertNotIn("NetworkPolicies", self.rendered.notes)


class MtlsTest(ChartChecks, unittest.TestCase):
    """tests/helm/values-mtls.yaml: mutual TLS between pollers and tracker,
    Secrets in cert-manager's layout."""

    VALUES = (MTLS_VALUES,)
    cluster_domain = "cluster.local"
    mtls = True

    def test_each_side_mounts_its_secret_read_only(self):
        """Mounted whole (a subPath mount would never see a renewal)."""
        expected = [(self.rendered.get("Deployment", full("tracker")), "qfp-tracker-tls")]
        expected += [(p, "qfp-poller-tls") for p in self.poller_workloads()]
        for workload, secret in expected:
            with self.subTest(workload["metadata"]["name"]):
                mount, volume = volume_for_mount(workload, MTLS_DIR)
                self.assertIs(mount["readOnly"], True)
                self.assertNotIn("subPath", mount)
                self.assertEqual(volume["secret"], {"secretName": secret,
                                                    "defaultMode": 0o440})

    def test_the_tracker_accepts_its_rendered_config(self):
        """The real qs-error-tracker reads the rendered file with the TLS
        files pointed at generated ones: mutual TLS on all interfaces."""
        binary = Path(os.environ.get("QFP_BIN_DIR") or REPO / "build") / "tracker-service" / "qs-error-tracker"
        if not binary.is_file():
            self.skipTest(f"{binary} is not built")
        from support.certs import ensure_pki  # needs python3-cryptography
        work = self.out / "check-tracker"
        pki = ensure_pki(work / "pki", key_type="ec")
        _, config = self.rendered.config_of(full("tracker"))
        config = copy.deepcopy(config)
        tracker = config["Butler-SOS"]["failedPolls"]["tracker"]
        tracker["walDirectory"] = str(work / "wal")
        tracker["tls"].update(certFile=pki.server_cert, keyFile=pki.server_key,
                              caFile=pki.root_ca)
        path = work / "tracker.json"
        path.write_text(json.dumps(config))
        result = subprocess.run(
            [str(binary), "--config", str(path), "--check_config"],
            capture_output=True, text=True, timeout=30,
            env={k: v for k, v in os.environ.items() if not k.startswith("QFP_")})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Config valid: listen 0.0.0.0:50051,", result.stdout)
        self.assertIn("gRPC mutual TLS", result.stdout)


class ValidatorTest(unittest.TestCase):
    """validate.js refuses what the API server would refuse."""

    def setUp(self):
        require_validator(self)

    def errors_of(self, *objects) -> list[list[str]]:
        out = Path(TMP.name) / f"validator-{self.id().rsplit('.', 1)[1]}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "objects.json").write_text(json.dumps(objects))
        return [r["errors"] for r in validate_objects(out / "objects.json")["results"]]

    def deployment(self) -> dict:
        return copy.deepcopy(Rendered(render(
            RENDERER, out_dir=Path(TMP.name) / "validator-base")).get(
                "Deployment", full("tracker")))

    def test_a_rendered_object_passes(self):
        self.assertEqual(self.errors_of(self.deployment()), [[]])

    def test_a_wrong_type_and_a_missing_required_field(self):
        wrong_type, missing = self.deployment(), self.deployment()
        container(wrong_type)["ports"][0]["containerPort"] = "50051"
        del container(missing)["name"]
        self.assertEqual(self.errors_of(wrong_type, missing), [
            ["data/spec/template/spec/containers/0/ports/0/containerPort must be integer"],
            ["data/spec/template/spec/containers/0 must have required property name"],
        ])

    def test_unknown_fields_at_any_depth(self):
        nested, top = self.deployment(), self.deployment()
        container(nested)["securityContext"]["readOnlyRootFilesystm"] = True
        top["spek"] = {}
        self.assertEqual(self.errors_of(nested, top), [
            ["data/spec/template/spec/containers/0/securityContext/"
             "readOnlyRootFilesystm is an unknown field"],
            ["data/spek is an unknown field"],
        ])

    def test_free_form_maps_are_not_unknown_fields(self):
        deployment = self.deployment()
        deployment["metadata"]["annotations"] = {"any.example/key": "v"}
        self.assertEqual(self.errors_of(deployment), [[]])

    def test_a_kind_without_a_schema(self):
        self.assertEqual(
            self.errors_of({"apiVersion": "example.com/v1", "kind": "Widget",
                            "metadata": {"name": "w"}}),
            [["kubernetes-models has no model for example.com/v1 Widget"]])


# Values turning the tracker's coverage check on (deep-merged into the
# chart's butlerSosConfig).
COVERAGE_ON = ("butlerSosConfig:\n  Butler-SOS:\n    failedPolls:\n"
               "      tracker:\n        coverage:\n          enable: true\n")


class ClusterValuesTest(unittest.TestCase):
    """poller.cluster.enabled false, and a group with fixed shards."""

    def rendered(self, values_yaml: str) -> Rendered:
        out = Path(TMP.name) / f"cluster-{self.id().rsplit('.', 1)[1]}"
        out.mkdir(parents=True, exist_ok=True)
        values = out / "values.yaml"
        values.write_text(values_yaml)
        return Rendered(render(RENDERER, values, out_dir=out))

    def test_without_sharing_every_replica_polls_everything(self):
        rendered = self.rendered("poller:\n  cluster:\n    enabled: false\n")
        poller = rendered.get("Deployment", full("poller-default"))
        self.assertNotIn("QFP_POD_IP", env_of(poller))
        _, config = rendered.config_of(full("poller-default"))
        self.assertNotIn("cluster", config["Butler-SOS"]["failedPolls"]["poller"])
        self.assertEqual([s["metadata"]["name"] for s in rendered.objects("Service")],
                         [full("poller"), full("tracker")])
        self.assertIn("every replica of\na group polls every server", rendered.notes)

    def test_coverage_with_groups_that_only_shard(self):
        rendered = self.rendered(
            COVERAGE_ON +
            "poller:\n  groups:\n    emea:\n      replicas: 2\n      config:\n"
            "        Butler-SOS:\n          failedPolls:\n"
            "            poller:\n              cluster:\n"
            "                peersRefreshInterval: 5000\n")
        _, config = rendered.config_of(full("tracker"))
        self.assertTrue(
            config["Butler-SOS"]["failedPolls"]["tracker"]["coverage"]["enable"])

    def test_a_group_with_fixed_shards_gets_no_peers_dns(self):
        rendered = self.rendered(
            "poller:\n  spool:\n    persistence:\n      enabled: true\n"
            "  groups:\n    default:\n      replicas: 4\n      config:\n"
            "        Butler-SOS:\n          failedPolls:\n"
            "            poller:\n              cluster:\n"
            "                shardCount: 4\n")
        _, config = rendered.config_of(full("poller-default"))
        self.assertEqual(config["Butler-SOS"]["failedPolls"]["poller"]["cluster"],
                         {"shardCount": 4})


class RefusedValuesTest(unittest.TestCase):
    """Values the chart must refuse with a message naming the problem."""

    def refused(self, values_yaml: str, *, kube_version: str = "1.28.0") -> str:
        out = Path(TMP.name) / f"refused-{self.id().rsplit('.', 1)[1]}"
        out.mkdir(parents=True, exist_ok=True)
        values = out / "values.yaml"
        values.write_text(values_yaml)
        with self.assertRaises(RenderError) as caught:
            render(RENDERER, values, kube_version=kube_version, out_dir=out)
        return str(caught.exception)

    def test_a_fixed_poller_id(self):
        message = self.refused(
            "poller:\n  groups:\n    default:\n      config:\n"
            "        Butler-SOS:\n          failedPolls:\n"
            "            poller:\n              pollerId: poller-1\n")
        self.assertIn("pollerId", message)

    def test_fixed_shards_that_cannot_cover_every_shard(self):
        shards = ("      config:\n        Butler-SOS:\n          failedPolls:\n"
                  "            poller:\n              cluster:\n"
                  "                shardCount: 3\n")
        message = self.refused("poller:\n  groups:\n    default:\n      replicas: 3\n" + shards)
        self.assertIn("StatefulSet ordinal", message)
        message = self.refused(
            "poller:\n  spool:\n    persistence:\n      enabled: true\n"
            "  groups:\n    default:\n      replicas: 2\n" + shards)
        self.assertIn("cluster.shardCount (3) must equal replicas (2)", message)

    def test_coverage_with_a_group_that_polls_other_servers(self):
        message = self.refused(
            COVERAGE_ON +
            "poller:\n  groups:\n    emea:\n      config:\n"
            "        Butler-SOS:\n          serversToMonitor:\n"
            "            servers: []\n          failedPolls:\n"
            "            poller:\n              requestTimeout: 5000\n"
            "              cluster:\n                shardCount: 1\n")
        self.assertIn("poller group emea", message)
        self.assertIn("sets requestTimeout, serversToMonitor", message)

    def test_a_group_name_kubernetes_refuses(self):
        self.assertIn("EMEA_1", self.refused("poller:\n  groups:\n    EMEA_1: {}\n"))

    def test_a_config_without_butler_sos_root(self):
        self.assertIn("Butler-SOS", self.refused("butlerSosConfig: |\n  logLevel: info\n"))
        self.assertIn("not valid YAML", self.refused("butlerSosConfig: \"a: [\"\n"))

    def test_a_metrics_namespace_kubernetes_refuses(self):
        message = self.refused("networkPolicy:\n  metricsNamespaces: [Prom_1]\n")
        self.assertIn("networkPolicy.metricsNamespaces", message)
        self.assertIn("Prom_1", message)

    def test_mtls_without_secret_names(self):
        message = self.refused("mtls:\n  enabled: true\n  poller:\n    secretName: p\n")
        self.assertIn("mtls.tracker.secretName", message)
        message = self.refused("mtls:\n  enabled: true\n  tracker:\n    secretName: t\n")
        self.assertIn("mtls.poller.secretName", message)

    def test_kubernetes_without_grpc_probes(self):
        self.assertIn("kubeVersion", self.refused("{}\n", kube_version="1.23.9"))



class ChartFilesTest(unittest.TestCase):

    def test_the_chart_files_lint_clean(self):
        yamllint = shutil.which("yamllint")
        if yamllint is None:
            self.skipTest("yamllint is not installed (apt install yamllint)")
        result = subprocess.run(
            [yamllint, "--strict", "-d", YAMLLINT_CONFIG, str(CHART / "Chart.yaml"),
             str(CHART / "values.yaml"), *map(str, sorted(HERE.glob("values-*.yaml")))],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_values_file_is_rendered_and_checked(self):
        """A values file added here gets every ChartChecks check (schemas,
        lockdown, network policies) only through a ChartChecks class."""
        rendered = {Path(v) for cls in ChartChecks.__subclasses__() for v in cls.VALUES}
        self.assertEqual(sorted(HERE.glob("values-*.yaml")), sorted(rendered))


if __name__ == "__main__":
    unittest.main()
