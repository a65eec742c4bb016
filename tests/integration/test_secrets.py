"""No secret ever shows (issue 11 §6).

Secrets are planted where users put them: the client key's passphrase (in
the file and in ``QFP_CERT_PASSPHRASE``), the InfluxDB 1.x password (file
and ``QFP_INFLUXDB_PASSWORD``), the 2.x/3.x token (file and
``QFP_INFLUXDB_TOKEN``) and a credential header sent with health checks.
Then every path runs at debug log level: start, ``--check-config`` (good
and bad configs, a wrong passphrase), failing polls, failing writes to an
InfluxDB that echoes back every request it refuses (URL, headers and body,
as a careless proxy does), and both services' ``/metrics``. No log line,
metric or error message may contain a secret, nor the Basic credentials
built from the 1.x password.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite

PASSWORD = "pw-Secr3t-Passw0rd-51d3"
TOKEN = "tk-Secr3t-T0ken-0c7f9a"
HEADER_SECRET = "hdr-Secr3t-Bearer-92be"
WRONG_PASSPHRASE = "pp-Wr0ng-Passphrase-4e1c"
USER = "qfp_writer"


class EchoingInflux(http.server.ThreadingHTTPServer):
    """An InfluxDB stand-in that answers /ping and refuses everything else,
    echoing the request (path with query, headers, body) in its error body
    and in a header: the worst a server can do with our credentials."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.requests = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        self.server.requests += 1
        length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/ping") or self.path.startswith("/health"):
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        echo = json.dumps({
            "code": "unauthorized",
            "message": f"refused {self.command} {self.path} headers "
                       f"{dict(self.headers)} body {body[:200]!r}",
            "error": f"refused {self.path} {dict(self.headers)}"})
        write = "/write" in self.path
        self.send_response(503 if write else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", self.path)
        if write:
            self.send_header("Retry-After", "1")
        data = echo.encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


class SecretsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="qfp-secrets-")
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"), key_type="ec")
        cls.secrets = {
            "passphrase": cls.pki.client_key_passphrase,
            "password": PASSWORD,
            "basic credentials": base64.b64encode(
                f"{USER}:{PASSWORD}".encode()).decode(),
            "token": TOKEN,
            "header": HEADER_SECRET,
            "wrong passphrase": WRONG_PASSPHRASE,
        }
        cls.site = FakeQlikSite({"endpoints": [
            {"name": "unauthorized", "behaviour": "status", "status": 401},
            {"name": "down", "behaviour": "refuse"},
            {"name": "healthy", "behaviour": "healthy"},
        ]}, cls.pki).start()
        cls.influx = EchoingInflux().start()
        cls.outputs = {}  # what -> text seen

    @classmethod
    def tearDownClass(cls):
        cls.site.stop()
        cls.influx.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers --------------------------------------------------------------

    def config(self, name, *, version=1, passphrase_in_file=True,
               secrets_in_file=True, passphrase=None, metrics=None,
               tracker_metrics=None, tracker_port=None):
        ports = self.site.ports
        servers = [
            stack.server_entry("unauthorized", ports["unauthorized"],
                               headers={"Authorization":
                                        f"Bearer {HEADER_SECRET}"}),
            stack.server_entry("down", ports["down"]),
            stack.server_entry("healthy", ports["healthy"]),
        ]
        poller_extra = {"pollerId": f"secrets-{name}"}
        if metrics:
            poller_extra["metricsListen"] = f"127.0.0.1:{metrics}"
        tracker_extra = {}
        if tracker_metrics:
            tracker_extra["metricsListen"] = f"127.0.0.1:{tracker_metrics}"
        config = stack.butler_config(
            self.pki, servers, influx_port=self.influx.server_address[1],
            tracker_port=tracker_port or procs.free_port(),
            health_interval_ms=500, request_timeout_ms=2000,
            poller_extra=poller_extra, tracker_extra=tracker_extra)
        sos = config["Butler-SOS"]
        sos["logLevel"] = "debug"
        sos["cert"]["clientCertKey"] = self.pki.client_key_encrypted
        sos["cert"]["clientCertPassphrase"] = (
            (passphrase or self.pki.client_key_passphrase)
            if passphrase_in_file else "")
        influx = sos["influxdbConfig"]
        influx["version"] = version
        influx["v1Config"]["auth"] = {
            "enable": True, "username": USER,
            "password": PASSWORD if secrets_in_file else ""}
        influx["v2Config"] = {
            "org": "qfp", "bucket": "senseops", "description": "d",
            "retentionDuration": "10d",
            "token": TOKEN if secrets_in_file else ""}
        influx["v3Config"] = {
            "database": "senseops", "description": "d",
            "retentionDuration": "10d",
            "token": TOKEN if secrets_in_file else ""}
        return stack.write_config(os.path.join(self.tmp, f"{name}.yaml"),
                                  config)

    def env_secrets(self):
        return {"QFP_CERT_PASSPHRASE": self.pki.client_key_passphrase,
                "QFP_INFLUXDB_PASSWORD": PASSWORD,
                "QFP_INFLUXDB_TOKEN": TOKEN}

    def run_binary(self, binary, config, *args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        done = subprocess.run(
            [procs.bin_path(binary), "--config", config, *args],
            capture_output=True, text=True, timeout=60, env=full_env)
        return done.returncode, done.stdout + done.stderr

    def assert_no_secret(self, what, text):
        self.assertTrue(text, f"{what}: nothing was captured")
        for name, secret in self.secrets.items():
            self.assertNotIn(secret, text, f"{what} shows the {name}")

    def scrape(self, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=10) as answer:
            return answer.read().decode()

    # -- --check-config -------------------------------------------------------

    def test_check_config_shows_no_secret(self):
        for version in (1, 2, 3):
            path = self.config(f"check-v{version}", version=version)
            for binary in ("qs-poller", "qs-error-tracker"):
                with self.subTest(binary=binary, version=version):
                    code, out = self.run_binary(binary, path,
                                                "--check-config")
                    self.assertEqual(code, 0, out)
                    self.assert_no_secret(f"{binary} --check-config", out)

    def test_wrong_passphrase_is_not_echoed(self):
        path = self.config("wrong", passphrase=WRONG_PASSPHRASE)
        code, out = self.run_binary("qs-poller", path, "--check-config")
        self.assertEqual(code, 2, out)
        self.assertIn("the passphrase is wrong", out)
        self.assert_no_secret("qs-poller refusing a wrong passphrase", out)

    def test_secrets_from_the_environment_stay_hidden(self):
        path = self.config("env", passphrase_in_file=False,
                           secrets_in_file=False)
        for binary in ("qs-poller", "qs-error-tracker"):
            with self.subTest(binary=binary):
                code, out = self.run_binary(binary, path, "--check-config",
                                            env=self.env_secrets())
                self.assertEqual(code, 0, out)
                self.assert_no_secret(f"{binary} --check-config (env)", out)

    # -- running: failing polls, failing writes, metrics ----------------------

    def run_stack(self, version, *, from_env):
        name = f"run-v{version}{'-env' if from_env else ''}"
        tracker_port = procs.free_port()
        poller_metrics, tracker_metrics = procs.free_port(), procs.free_port()
        path = self.config(name, version=version,
                           passphrase_in_file=not from_env,
                           secrets_in_file=not from_env,
                           metrics=poller_metrics,
                           tracker_metrics=tracker_metrics,
                           tracker_port=tracker_port)
        env = self.env_secrets() if from_env else None
        log_dir = os.path.join(self.tmp, name)
        os.makedirs(log_dir)
        tracker = stack.start_tracker(
            path, log_dir, env=env,
            extra_args=["--shutdown_deadline_ms", "1000"])
        poller = (stack.start_poller_env(path, log_dir, env=env) if from_env
                  else stack.start_poller(path, log_dir))
        before = self.influx.requests
        try:
            # Failing polls of both kinds, and writes refused at least twice.
            procs.wait_until(
                lambda: len(stack.failure_lines(poller.log_text())) >= 4
                and self.influx.requests >= before + 3,
                timeout=30, interval=0.2,
                message="failing polls and refused writes")
            pages = self.scrape(poller_metrics) + self.scrape(tracker_metrics)
        finally:
            exits = stack.stop_all([poller, tracker])
        self.assertEqual(set(exits.values()), {0}, exits)
        texts = {"poller log": poller.log_text(),
                 "tracker log": tracker.log_text(), "metrics": pages}
        self.assertIn("401", texts["poller log"])
        self.assertIn("503", texts["tracker log"])
        for what, text in texts.items():
            self.assert_no_secret(f"{name} {what}", text)

    def test_running_v1_with_secrets_in_the_file(self):
        self.run_stack(1, from_env=False)

    def test_running_v2_with_secrets_from_the_environment(self):
        self.run_stack(2, from_env=True)

    def test_running_v3_with_secrets_in_the_file(self):
        self.run_stack(3, from_env=False)

    def test_the_sweep_can_fail(self):
        # The echoing server really does hand secrets back: a service that
        # logged its answers verbatim would be caught.
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.influx.server_address[1]}/api/v2/write",
            data=b"x", headers={"Authorization": f"Token {TOKEN}"})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        self.assertIn(TOKEN, refused.exception.read().decode())
        with self.assertRaises(AssertionError):
            self.assert_no_secret("a line with the token", f"x {TOKEN} y")


if __name__ == "__main__":
    unittest.main()
