"""Self-test of tests/support: the PKI, the fake Qlik Sense site and the
influxd harness, checked with real clients (command-line curl, which uses the
same libcurl and OpenSSL as the services, and Python's ssl module for exact
OpenSSL verify codes).

Run from tests/:  /usr/bin/python3 -m unittest -v integration.test_fake_qlik
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from support.certs import load_pki, make_pki
from support.fake_qlik import FakeQlikSite, healthcheck_payload
from support.influxd import InfluxD
from support.procs import Proc, free_port, wait_until

TESTS_DIR = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"

SCENARIO = {"endpoints": [
    {"name": "healthy", "paths": {
        "/qps/sales/session": {"behaviour": "status", "status": 500},
        "/qps/hang/session": {"behaviour": "blackhole"}}},
    {"name": "nocert"},
    {"name": "xrf", "check_xrfkey": True},
    {"name": "refuse", "behaviour": "refuse"},
    {"name": "blackhole", "behaviour": "blackhole"},
    {"name": "reset", "behaviour": "reset"},
    {"name": "status503", "behaviour": "status", "status": 503},
    {"name": "slow", "behaviour": "slow_body"},
    {"name": "html", "behaviour": "html"},
    {"name": "truncated", "behaviour": "truncated_json"},
    {"name": "truncated_close", "behaviour": "truncated_json",
     "framing": "close"},
    {"name": "wrong_ca", "behaviour": "wrong_ca"},
    {"name": "wrong_ca_chain", "behaviour": "wrong_ca_chain"},
    {"name": "expired", "behaviour": "expired_cert"},
    {"name": "mismatch", "behaviour": "hostname_mismatch"},
    {"name": "selfsigned", "behaviour": "selfsigned"},
    {"name": "plain", "behaviour": "plain_http",
     "paths": {"/qrs/app": {"behaviour": "status", "status": 401}}},
]}


@dataclasses.dataclass
class CurlResult:
    rc: int
    status: int
    body: bytes
    head: str
    stderr: str
    elapsed: float

    def json(self):
        return json.loads(self.body)


class _Shared:
    """The PKI and running site shared by every FakeQlikTestBase test."""

    tmp: tempfile.TemporaryDirectory
    site: FakeQlikSite | None = None


def setUpModule():
    _Shared.tmp = tempfile.TemporaryDirectory(prefix="fake-qlik-test-")
    _Shared.dir = Path(_Shared.tmp.name)
    _Shared.pki = make_pki(_Shared.dir / "pki")
    _Shared.record_path = str(_Shared.dir / "requests.jsonl")
    _Shared.site = FakeQlikSite(SCENARIO, _Shared.pki,
                                _Shared.record_path).start()
    _Shared.counter = itertools.count()


def tearDownModule():
    if _Shared.site is not None:
        _Shared.site.stop()
    _Shared.tmp.cleanup()


class FakeQlikTestBase(unittest.TestCase):
    """Tests against the shared site (SCENARIO) with real clients."""

    @classmethod
    def setUpClass(cls):
        cls.dir, cls.pki = _Shared.dir, _Shared.pki
        cls.site, cls.record_path = _Shared.site, _Shared.record_path

    # -- clients -----------------------------------------------------------

    def curl(self, endpoint: str, path: str = "/engine/healthcheck", *,
             cert: bool = True, max_time: float = 5, extra=()) -> CurlResult:
        n = next(_Shared.counter)
        body, head = self.dir / f"body{n}", self.dir / f"head{n}"
        args = ["curl", "-sS", "--ipv4", "--max-time", str(max_time),
                "--cacert", self.pki.root_ca, "-o", str(body),
                "-D", str(head), "-w", "%{http_code}"]
        if cert:
            args += ["--cert", self.pki.client_cert,
                     "--key", self.pki.client_key]
        args += [*extra, self.site.url(endpoint, path)]
        started = time.monotonic()
        done = subprocess.run(args, capture_output=True, text=True,
                              timeout=max_time + 10)
        return CurlResult(
            rc=done.returncode, status=int(done.stdout or 0),
            body=body.read_bytes() if body.exists() else b"",
            head=head.read_text() if head.exists() else "",
            stderr=done.stderr, elapsed=time.monotonic() - started)

    def tls_client(self, endpoint: str, *, hostname: str = "localhost",
                   verify: bool = True) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=self.pki.root_ca)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(self.pki.client_cert, self.pki.client_key)
        sock = socket.create_connection(
            ("127.0.0.1", self.site.ports[endpoint]), timeout=5)
        try:
            return context.wrap_socket(sock, server_hostname=hostname)
        except BaseException:
            sock.close()
            raise

    def assertCurlOk(self, result: CurlResult, status: int = 200):
        self.assertEqual(result.rc, 0, result.stderr)
        self.assertEqual(result.status, status, result.body[:300])


class HealthyTest(FakeQlikTestBase):

    def test_healthcheck_object(self):
        result = self.curl("healthy")
        self.assertCurlOk(result)
        self.assertIn("application/json", result.head)
        body = result.json()
        self.assertEqual(set(body), set(healthcheck_payload()))
        self.assertEqual(set(body["mem"]), {"committed", "allocated", "free"})
        self.assertEqual(set(body["apps"]),
                         {"active_docs", "in_memory_docs", "loaded_docs",
                          "calls", "selections"})
        self.assertIs(body["saturated"], False)

    def test_sessions_for_default_and_named_virtual_proxy(self):
        for path in ("/qps/session", "/qps/finance/session"):
            with self.subTest(path=path):
                result = self.curl("healthy",
                                   path + "?Xrfkey=abcdefghij012345")
                self.assertCurlOk(result)
                sessions = result.json()
                self.assertIsInstance(sessions, list)
                self.assertTrue(sessions)
                for session in sessions:
                    self.assertLessEqual(
                        {"UserDirectory", "UserId", "SessionId",
                         "Attributes"}, set(session))

    def test_apps(self):
        result = self.curl("healthy", "/qrs/app?xrfkey=abcdefghij012345")
        self.assertCurlOk(result)
        apps = result.json()
        self.assertTrue(apps)
        for app in apps:
            self.assertLessEqual({"id", "name", "publishTime", "stream"},
                                 set(app))

    def test_unknown_path_is_404(self):
        self.assertCurlOk(self.curl("healthy", "/qrs/about"), 404)

    def test_encrypted_client_key_with_passphrase(self):
        result = self.curl("healthy", extra=[
            "--key", self.pki.client_key_encrypted,
            "--pass", self.pki.client_key_passphrase])
        self.assertCurlOk(result)

    def test_xrfkey_checked_when_asked(self):
        key = "abcdefghij012345"
        missing = self.curl("xrf", "/qps/session")
        self.assertCurlOk(missing, 403)
        matching = self.curl("xrf", f"/qps/session?Xrfkey={key}",
                             extra=["-H", f"X-Qlik-Xrfkey: {key}"])
        self.assertCurlOk(matching, 200)
        self.assertCurlOk(self.curl("xrf"), 200)  # health check: no key


class ClientCertificateTest(FakeQlikTestBase):

    def test_missing_client_certificate_fails_handshake(self):
        result = self.curl("nocert", cert=False)
        self.assertNotEqual(result.rc, 0)
        self.assertEqual(result.status, 0)
        wait_until(lambda: self.site.tls_failures("nocert"), 5,
                   message="the server to log the failed handshake")
        self.assertIn("certificate", self.site.tls_failures("nocert")[0]
                      ["error"].lower())
        self.assertEqual(self.site.requests("nocert"), [])

    def test_client_certificate_from_other_ca_fails_handshake(self):
        result = self.curl("nocert", cert=False, extra=[
            "--cert", self.pki.other_server_cert,
            "--key", self.pki.other_server_key])
        self.assertNotEqual(result.rc, 0)
        self.assertEqual(result.status, 0)
        self.assertEqual(self.site.requests("nocert"), [])


class MisbehaviourTest(FakeQlikTestBase):

    def test_refuse(self):
        result = self.curl("refuse")
        self.assertEqual(result.rc, 7, result.stderr)  # couldn't connect
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(
                ("127.0.0.1", self.site.ports["refuse"]), timeout=2).close()

    def test_blackhole_connects_then_hangs(self):
        with socket.create_connection(
                ("127.0.0.1", self.site.ports["blackhole"]), timeout=2):
            pass  # TCP connects: the kernel queues it, nobody accepts
        result = self.curl("blackhole", max_time=1)
        self.assertEqual(result.rc, 28, result.stderr)  # timeout
        self.assertLess(result.elapsed, 3)

    def test_path_level_blackhole_answers_nothing(self):
        result = self.curl("healthy", "/qps/hang/session", max_time=1)
        self.assertEqual(result.rc, 28, result.stderr)
        self.assertEqual(result.head, "")

    def test_reset_after_request(self):
        result = self.curl("reset")
        self.assertEqual(result.rc, 56, result.stderr)  # receive failure
        self.assertIn("reset by peer", result.stderr)
        self.assertEqual(len(self.site.requests("reset")), 1)

    def test_status_path_override_and_endpoint(self):
        failing = self.curl("healthy", "/qps/sales/session")
        self.assertCurlOk(failing, 500)
        self.assertEqual(failing.json()["statusCode"], 500)
        self.assertCurlOk(self.curl("healthy", "/qps/session"), 200)
        self.assertCurlOk(self.curl("status503", "/qrs/app"), 503)

    def test_slow_body_sends_headers_then_dribbles(self):
        result = self.curl("slow", max_time=2,
                           extra=["-w", " %{size_download}"])
        self.assertEqual(result.rc, 28, result.stderr)
        self.assertTrue(result.head.startswith("HTTP/1.1 200"), result.head)
        length = int(next(line.split(":")[1] for line in
                          result.head.splitlines()
                          if line.lower().startswith("content-length")))
        received = len(result.body)
        self.assertGreater(received, 0)
        # At one byte a second, what is left takes longer than 10 s.
        self.assertGreaterEqual(length - received, 10)

    def test_html_login_page(self):
        result = self.curl("html")
        self.assertCurlOk(result)
        self.assertIn("text/html", result.head)
        self.assertTrue(result.body.lower().startswith(b"<!doctype html>"))

    def test_truncated_json_with_content_length(self):
        result = self.curl("truncated")
        self.assertEqual(result.rc, 18, result.stderr)  # partial file
        self.assertIn("application/json", result.head)
        with self.assertRaises(ValueError):
            json.loads(result.body)

    def test_truncated_json_delimited_by_close(self):
        result = self.curl("truncated_close")
        self.assertCurlOk(result)
        self.assertNotIn("content-length", result.head.lower())
        with self.assertRaises(ValueError):
            json.loads(result.body)

    def test_plain_http(self):
        result = self.curl("plain")
        self.assertCurlOk(result)
        self.assertIn("version", result.json())
        self.assertCurlOk(self.curl("plain", "/qrs/app"), 401)
        [last] = self.site.requests("plain")[-1:]
        self.assertIsNone(last["client_cert_subject"])

    def test_https_to_plain_http_is_a_protocol_error(self):
        url = self.site.url("plain").replace("http://", "https://")
        done = subprocess.run(
            ["curl", "-sS", "--ipv4", "--max-time", "5", "--cacert",
             self.pki.root_ca, url], capture_output=True, text=True,
            timeout=15)
        self.assertEqual(done.returncode, 35, done.stderr)  # SSL connect
        self.assertIn("wrong version number", done.stderr)


class ServerCertificateTest(FakeQlikTestBase):
    """Each broken certificate fails verification against root.pem with the
    OpenSSL verify code the services must classify."""

    CASES = {
        # endpoint: (X509_V_ERR_* code, curl message)
        "wrong_ca": (20, "unable to get local issuer certificate"),
        "wrong_ca_chain": (19, "self-signed certificate in certificate chain"),
        "expired": (10, "certificate has expired"),
        "mismatch": (62, "no alternative certificate subject name matches"),
        "selfsigned": (18, "self-signed certificate"),
    }

    def test_verification_failures(self):
        for endpoint, (code, message) in self.CASES.items():
            with self.subTest(endpoint=endpoint):
                with self.assertRaises(ssl.SSLCertVerificationError) as raised:
                    self.tls_client(endpoint).close()
                self.assertEqual(raised.exception.verify_code, code,
                                 raised.exception.verify_message)
                result = self.curl(endpoint)
                self.assertEqual(result.rc, 60, result.stderr)
                self.assertIn(message, result.stderr)

    def test_healthy_root_cert_verifies_for_localhost_and_ip(self):
        for hostname in ("localhost", "127.0.0.1"):
            with self.subTest(hostname=hostname):
                self.tls_client("healthy", hostname=hostname).close()

    def test_client_that_goes_on_gets_healthy_answers(self):
        result = self.curl("expired", extra=["--insecure"])
        self.assertCurlOk(result)


class RecordingTest(FakeQlikTestBase):

    def test_request_recorded_with_headers_in_order_and_client_cn(self):
        key = "Zyxwvutsrq987654"
        headers = [("Host", "localhost"), ("Accept", "application/json"),
                   ("X-Qlik-Xrfkey", key), ("XVirtualProxy", "/sales"),
                   ("Cache-Control", "no-cache")]
        sock = self.tls_client("healthy")
        conn = http.client.HTTPConnection("localhost", timeout=5)
        conn.sock = sock
        try:
            conn.putrequest("GET", f"/qps/other/session?Xrfkey={key}",
                            skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            response.read()
        finally:
            conn.close()

        [record] = [r for r in self.site.requests("healthy")
                    if r["path"] == "/qps/other/session"]
        self.assertEqual(record["method"], "GET")
        self.assertEqual(record["query"], f"Xrfkey={key}")
        self.assertEqual(record["headers"], [list(h) for h in headers])
        self.assertEqual(record["client_cert_subject"], "QlikClient")
        self.assertAlmostEqual(record["time"], time.time(), delta=30)

        lines = Path(self.record_path).read_text().splitlines()
        self.assertEqual([json.loads(line) for line in lines],
                         self.site.requests())


class LifecycleTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="fake-qlik-life-")
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)

    def test_stop_is_bounded_with_busy_connections(self):
        pki = make_pki(self.dir / "pki", key_type="ec")
        scenario = {"endpoints": [{"name": "slow", "behaviour": "slow_body"},
                                  {"name": "hang", "behaviour": "healthy",
                                   "paths": {"/qrs/app": {
                                       "behaviour": "blackhole"}}}]}
        site = FakeQlikSite(scenario, pki).start()
        clients = [subprocess.Popen(
            ["curl", "-sS", "--ipv4", "--max-time", "30", "--cacert",
             pki.root_ca, "--cert", pki.client_cert, "--key", pki.client_key,
             "-o", os.devnull, site.url(name, path)],
            stderr=subprocess.DEVNULL)
            for name, path in (("slow", "/engine/healthcheck"),
                               ("hang", "/qrs/app"))]
        try:
            wait_until(lambda: len(site.requests()) == 2, 5,
                       message="both requests to arrive")
            started = time.monotonic()
            site.stop()
            self.assertLess(time.monotonic() - started, 3)
            for client in clients:  # the server closed: curl ends early
                self.assertNotEqual(client.wait(timeout=5), 0)
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()

    def test_invalid_scenarios_are_rejected(self):
        pki = make_pki(self.dir / "pki", key_type="ec")
        bad = [
            {"endpoints": []},
            {"endpoints": [{"name": "a", "behaviour": "teapot"}]},
            {"endpoints": [{"name": "a", "behavior": "healthy"}]},
            {"endpoints": [{"name": "a"}, {"name": "a"}]},
            {"endpoints": [{"name": "a", "behaviour": "refuse",
                            "paths": {"/qrs/app": {"behaviour": "html"}}}]},
            {"endpoints": [{"name": "a", "paths": {
                "/qrs/app": {"behaviour": "refuse"}}}]},
            {"endpoints": [{"name": "a", "behaviour": "status",
                            "status": 1000}]},
        ]
        for scenario in bad:
            with self.subTest(scenario=scenario):
                with self.assertRaises(ValueError):
                    FakeQlikSite(scenario, pki)

    def test_command_lines(self):
        pki_dir = self.dir / "pki"
        subprocess.run([PYTHON, "-m", "support.certs", str(pki_dir),
                        "--key-type", "ec"], cwd=TESTS_DIR, check=True,
                       capture_output=True, timeout=30)
        pki = load_pki(pki_dir)
        scenario_path = self.dir / "scenario.json"
        scenario_path.write_text(json.dumps({"endpoints": [
            {"name": "one"}, {"name": "down", "behaviour": "refuse"}]}))
        ready = self.dir / "ready.json"
        record = self.dir / "record.jsonl"
        proc = Proc([PYTHON, "-m", "support.fake_qlik", "--scenario",
                     scenario_path, "--pki", pki_dir, "--ready-file", ready,
                     "--record", record], name="fake_qlik", cwd=TESTS_DIR,
                    log_dir=str(self.dir)).start()
        self.addCleanup(proc.stop)
        wait_until(ready.exists, 15, message="the fake site's ready file")
        ports = json.loads(ready.read_text())["ports"]
        self.assertEqual(set(ports), {"one", "down"})

        done = subprocess.run(
            ["curl", "-sS", "--ipv4", "--max-time", "5", "--cacert",
             pki.root_ca, "--cert", pki.client_cert, "--key", pki.client_key,
             "-o", os.devnull, "-w", "%{http_code}",
             f"https://localhost:{ports['one']}/engine/healthcheck"],
            capture_output=True, text=True, timeout=15)
        self.assertEqual(done.stdout, "200", done.stderr)
        self.assertEqual(json.loads(record.read_text())["endpoint"], "one")

        proc.signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=10), 0, proc.log_text())


class InfluxDTest(unittest.TestCase):

    def test_write_query_stop(self):
        with tempfile.TemporaryDirectory(prefix="influxd-test-") as tmp:
            influx = InfluxD(tmp)
            with influx:
                pid = influx.pid
                config = influx.config_path.read_text()
                addresses = re.findall(r'bind-address = "([^"]*)"', config)
                self.assertTrue(addresses)
                for address in addresses:
                    self.assertTrue(address.startswith("127.0.0.1:"), address)
                influx.create_database("qlik")
                influx.write(
                    'butler_sos_errors,error_type=HEALTH_API,server_name='
                    'sense\\ 1 error_category="timeout",error_count=1,'
                    'request_timeout_ms=5000 1700000000000000000', db="qlik")
                [point] = influx.points("butler_sos_errors", "qlik",
                                        epoch="ns")
                self.assertEqual(point["server_name"], "sense 1")
                self.assertEqual(point["error_category"], "timeout")
                self.assertEqual(point["time"], 1700000000000000000)
                self.assertEqual(
                    influx.field_types("butler_sos_errors", "qlik"),
                    {"error_category": "string", "error_count": "float",
                     "request_timeout_ms": "float"})
            self.assertFalse(influx.running)
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)

    def test_command_line(self):
        with tempfile.TemporaryDirectory(prefix="influxd-cli-") as tmp:
            ready = Path(tmp) / "ready.json"
            proc = Proc([PYTHON, "-m", "support.influxd", "--dir",
                         Path(tmp) / "db", "--ready-file", ready,
                         "--create-db", "qlik"], name="influxd_cli",
                        cwd=TESTS_DIR, log_dir=tmp).start()
            self.addCleanup(proc.stop)
            wait_until(ready.exists, 25, message="influxd's ready file")
            info = json.loads(ready.read_text())
            answer = json.loads(subprocess.run(
                ["curl", "-sS", "--max-time", "5", f"{info['url']}/query",
                 "--data-urlencode", "q=SHOW DATABASES", "-G"],
                capture_output=True, text=True, timeout=15,
                check=True).stdout)
            names = [row[0] for row in
                     answer["results"][0]["series"][0]["values"]]
            self.assertIn("qlik", names)
            proc.signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0, proc.log_text())
            with self.assertRaises(ProcessLookupError):
                os.kill(info["influxd_pid"], 0)


class ProcsTest(unittest.TestCase):

    def test_free_port_and_wait_until(self):
        port = free_port()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # really free
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            wait_until(lambda: False, 0.3, message="never")
        self.assertLess(time.monotonic() - started, 2)

    def test_proc_stop_escalates_to_sigkill(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = Proc([PYTHON, "-c",
                         "import signal, time; "
                         "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                         "print('up', flush=True); time.sleep(60)"],
                        name="stubborn", log_dir=tmp).start()
            proc.wait_for_log("up", 10)
            self.assertEqual(proc.stop(timeout=0.5), -signal.SIGKILL)
            self.assertEqual(proc.returncode, -signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(unittest.main())
