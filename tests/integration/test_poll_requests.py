"""The requests the real qs-poller sends (§2), as the fake site recorded them.

One run, three pollers, each against its own healthy endpoints of one fake
Qlik Sense site (which checks the client certificate and, for /qps and /qrs,
that the Xrfkey query parameter equals the X-Qlik-Xrfkey header):

* ``all``: every source on; server "alpha" with its own ``headers`` map and
  the virtual proxies "/" and "/sales"; server "beta" with
  ``userSessions.enable: false``; the QRS on its own endpoint.
* ``off``: ``enableSessionExtract: false`` and ``enableAppNameExtract:
  false`` (with a session host, virtual proxies and a hostIP configured all
  the same): health checks only.
* ``passphrase``: the encrypted client key, its passphrase only in the
  environment (QFP_CERT_PASSPHRASE), debug logging.

Then ``--check-config`` and the rejection of a wrong passphrase, each a
short run of the binary.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unittest
import urllib.parse

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite

INTERVAL_MS = 400
ROUNDS = 3  # requests of every target to wait for

XRFKEY = re.compile(r"^[0-9a-zA-Z]{16}$")
PASSPHRASE_ENV = "QFP_CERT_PASSPHRASE"

ACCEPT = ("Accept", "application/json, text/plain, */*")
CONTENT_TYPE = ("Content-Type", "application/json")
CACHE_CONTROL = ("Cache-Control", "no-cache")
QLIK_USER = ("X-Qlik-User", "UserDirectory=Internal; UserId=sa_repository")
# Every encoding our libcurl decodes (scripts/build-curl.sh: zlib and brotli;
# Butler SOS's axios: gzip, compress, deflate, br); libcurl puts it right
# after Host.
ACCEPT_ENCODING = ("Accept-Encoding", "deflate, gzip, br")
USER_AGENT = ("User-Agent", "qlik-failed-polls-qs-poller")

ALPHA_HEADERS = {"X-Custom-Route": "sense-alpha", "X-Trace": "qfp test 1"}

HEALTH = "/engine/healthcheck"
SESSIONS_ROOT = "/qps/session"
SESSIONS_SALES = "/qps/sales/session"
APPS = "/qrs/app"

ENDPOINTS = ("alpha", "beta", "qrs", "gamma", "delta")


def xrfkey_of(request: dict) -> tuple[str | None, str | None]:
    """(query parameter name, value) of the Xrfkey in a recorded request."""
    pairs = urllib.parse.parse_qsl(request["query"], keep_blank_values=True)
    for name, value in pairs:
        if name.lower() == "xrfkey":
            return name, value
    return None, None


def header_values(request: dict, name: str) -> list[str]:
    return [v for k, v in request["headers"] if k.lower() == name.lower()]


class PollRequestsTest(unittest.TestCase):
    """What reached the fake site from three concurrently running pollers."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="qfp-requests-")
        cls.pollers = {}
        cls.site = None
        try:
            cls._run()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _run(cls):
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"), key_type="ec")
        cls.site = FakeQlikSite({"endpoints": [
            {"name": name, "check_xrfkey": True} for name in ENDPOINTS]},
            cls.pki).start()
        ports = cls.ports = cls.site.ports
        common = dict(influx_port=procs.free_port(),
                      tracker_port=procs.free_port(),
                      health_interval_ms=INTERVAL_MS)

        # Every source on.
        all_config = stack.butler_config(
            cls.pki,
            [stack.server_entry("alpha", ports["alpha"],
                                sessions_port=ports["alpha"],
                                virtual_proxies=["/", "/sales"],
                                headers=ALPHA_HEADERS),
             stack.server_entry("beta", ports["beta"])],
            sessions_interval_ms=INTERVAL_MS,
            app_names_host=f"127.0.0.1:{ports['qrs']}",
            app_names_interval_ms=INTERVAL_MS,
            poller_extra={"pollerId": "requests-all"}, **common)
        # beta: a session host and virtual proxy configured, but disabled.
        all_config["Butler-SOS"]["serversToMonitor"]["servers"][1][
            "userSessions"] = {"enable": False,
                               "host": f"127.0.0.1:{ports['beta']}",
                               "virtualProxies": [{"virtualProxy": "/"}]}
        cls.all_config = stack.write_config(
            os.path.join(cls.tmp, "all.yaml"), all_config)

        # The global switches off, everything else configured.
        off_config = stack.butler_config(
            cls.pki,
            [stack.server_entry("gamma", ports["gamma"],
                                sessions_port=ports["gamma"],
                                virtual_proxies=["/", "/sales"])],
            sessions_interval_ms=INTERVAL_MS,
            app_names_host=f"127.0.0.1:{ports['gamma']}",
            app_names_interval_ms=INTERVAL_MS,
            poller_extra={"pollerId": "requests-off"}, **common)
        off_config["Butler-SOS"]["userSessions"]["enableSessionExtract"] = False
        off_config["Butler-SOS"]["appNames"]["enableAppNameExtract"] = False
        cls.off_config = stack.write_config(
            os.path.join(cls.tmp, "off.yaml"), off_config)

        # The encrypted key; the passphrase only in the environment.
        pass_config = stack.butler_config(
            cls.pki,
            [stack.server_entry("delta", ports["delta"],
                                sessions_port=ports["delta"])],
            sessions_interval_ms=INTERVAL_MS,
            app_names_host=f"127.0.0.1:{ports['delta']}",
            app_names_interval_ms=INTERVAL_MS,
            poller_extra={"pollerId": "requests-passphrase"}, **common)
        cert = pass_config["Butler-SOS"]["cert"]
        cert["clientCertKey"] = cls.pki.client_key_encrypted
        cert["clientCertPassphrase"] = ""
        cls.pass_config = stack.write_config(
            os.path.join(cls.tmp, "passphrase.yaml"), pass_config)

        debug = ["--log_level", "debug"]
        cls.pollers["all"] = stack.start_poller(
            cls.all_config, cls.tmp, name="poller-all", extra_args=debug)
        cls.pollers["off"] = stack.start_poller(
            cls.off_config, cls.tmp, name="poller-off", extra_args=debug)
        cls.pollers["passphrase"] = stack.start_poller_env(
            cls.pass_config, cls.tmp, name="poller-passphrase",
            env={PASSPHRASE_ENV: cls.pki.client_key_passphrase},
            extra_args=debug)

        wanted = {"alpha": (HEALTH, SESSIONS_ROOT, SESSIONS_SALES),
                  "beta": (HEALTH,), "qrs": (APPS,), "gamma": (HEALTH,),
                  "delta": (HEALTH, SESSIONS_ROOT, APPS)}

        def enough():
            return all(sum(1 for r in cls.site.requests(name)
                           if r["path"] == path) >= ROUNDS
                       for name, paths in wanted.items() for path in paths)
        try:
            procs.wait_until(enough, timeout=30, interval=0.1,
                             message=f"{ROUNDS} requests of every target")
        finally:
            cls.exits = stack.stop_all(cls.pollers.values())
        cls.requests = cls.site.requests()

    @classmethod
    def tearDownClass(cls):
        for proc in cls.pollers.values():
            proc.stop(timeout=5)
        if cls.site is not None:
            cls.site.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------

    def requests_of(self, endpoint, path=None):
        found = [r for r in self.requests if r["endpoint"] == endpoint
                 and (path is None or r["path"] == path)]
        if path is not None:
            self.assertGreaterEqual(len(found), ROUNDS,
                                    f"{endpoint} {path}")
        return found

    def host_header(self, endpoint):
        return ("Host", f"127.0.0.1:{self.ports[endpoint]}")

    def assert_headers(self, request, expected):
        self.assertEqual([tuple(h) for h in request["headers"]], expected)

    def xrfkey_requests(self):
        return [r for r in self.requests
                if r["path"].startswith(("/qps/", "/qrs/"))]

    # -- paths and queries ---------------------------------------------------

    def test_health_check_request(self):
        for endpoint in ("alpha", "beta", "gamma", "delta"):
            for request in self.requests_of(endpoint, HEALTH):
                with self.subTest(endpoint=endpoint):
                    self.assertEqual(request["method"], "GET")
                    self.assertEqual(request["query"], "")

    def test_session_paths_and_query(self):
        for path in (SESSIONS_ROOT, SESSIONS_SALES):
            for request in self.requests_of("alpha", path):
                name, value = xrfkey_of(request)
                self.assertEqual(request["method"], "GET")
                self.assertEqual(name, "Xrfkey")
                self.assertEqual(request["query"], f"Xrfkey={value}")

    def test_qrs_path_and_query(self):
        for request in self.requests_of("qrs", APPS):
            name, value = xrfkey_of(request)
            self.assertEqual(request["method"], "GET")
            self.assertEqual(name, "xrfkey")
            self.assertEqual(request["query"], f"xrfkey={value}")

    def test_no_other_paths(self):
        expected = {"alpha": {HEALTH, SESSIONS_ROOT, SESSIONS_SALES},
                    "beta": {HEALTH}, "qrs": {APPS}, "gamma": {HEALTH},
                    "delta": {HEALTH, SESSIONS_ROOT, APPS}}
        for endpoint, paths in expected.items():
            with self.subTest(endpoint=endpoint):
                self.assertEqual(
                    {r["path"] for r in self.requests_of(endpoint)}, paths)

    # -- headers ---------------------------------------------------------------

    def test_health_check_headers_in_order_with_server_headers(self):
        for request in self.requests_of("alpha", HEALTH):
            self.assert_headers(request, [
                self.host_header("alpha"), ACCEPT_ENCODING, ACCEPT,
                CONTENT_TYPE, CACHE_CONTROL, USER_AGENT,
                *ALPHA_HEADERS.items()])
        for request in self.requests_of("beta", HEALTH):
            self.assert_headers(request, [
                self.host_header("beta"), ACCEPT_ENCODING, ACCEPT,
                CONTENT_TYPE, CACHE_CONTROL, USER_AGENT])

    def test_session_headers_in_order_without_server_headers(self):
        for path, virtual_proxy in ((SESSIONS_ROOT, "/"),
                                    (SESSIONS_SALES, "/sales")):
            for request in self.requests_of("alpha", path):
                _, key = xrfkey_of(request)
                self.assert_headers(request, [
                    self.host_header("alpha"), ACCEPT_ENCODING, ACCEPT,
                    CONTENT_TYPE, CACHE_CONTROL, USER_AGENT,
                    ("XVirtualProxy", virtual_proxy), ("X-Qlik-Xrfkey", key)])

    def test_qrs_headers_in_order(self):
        for request in self.requests_of("qrs", APPS):
            _, key = xrfkey_of(request)
            self.assert_headers(request, [
                self.host_header("qrs"), ACCEPT_ENCODING, ACCEPT, CONTENT_TYPE,
                CACHE_CONTROL, USER_AGENT, QLIK_USER, ("X-Qlik-Xrfkey", key)])

    # -- Xrfkey ------------------------------------------------------------------

    def test_xrfkey_in_query_equals_header(self):
        requests = self.xrfkey_requests()
        self.assertGreaterEqual(len(requests), 4 * ROUNDS)
        for request in requests:
            _, key = xrfkey_of(request)
            self.assertEqual(header_values(request, "X-Qlik-Xrfkey"), [key])

    def test_xrfkey_is_16_alphanumerics(self):
        for request in self.xrfkey_requests():
            _, key = xrfkey_of(request)
            self.assertRegex(key, XRFKEY)

    def test_xrfkey_differs_on_every_request(self):
        keys = [xrfkey_of(r)[1] for r in self.xrfkey_requests()]
        self.assertEqual(len(set(keys)), len(keys))

    def test_fake_site_accepted_every_request(self):
        """check_xrfkey was on: a mismatch would have been a 403."""
        for name, proc in self.pollers.items():
            with self.subTest(poller=name):
                self.assertEqual(stack.failure_lines(proc.log_text()), [])

    # -- certificates ------------------------------------------------------------

    def test_client_certificate_presented(self):
        self.assertTrue(self.requests)
        for request in self.requests:
            self.assertEqual(request["client_cert_subject"],
                             certs.CLIENT_COMMON_NAME)
        self.assertEqual(self.site.tls_failures(), [])

    # -- switches ------------------------------------------------------------------

    def test_user_sessions_enable_false_removes_that_servers_sessions(self):
        self.assertEqual({r["path"] for r in self.requests_of("beta")},
                         {HEALTH})
        self.assertNotIn("PROXY_API beta",
                         self.pollers["all"].log_text())

    def test_enable_session_and_app_name_extract_false(self):
        self.assertEqual({r["path"] for r in self.requests_of("gamma")},
                         {HEALTH})
        log = self.pollers["off"].log_text()
        self.assertNotIn("PROXY_API", log)
        self.assertNotIn("APP_NAMES_EXTRACT", log)
        self.assertIn("qs-poller started: 1 poll targets", log)

    def test_all_pollers_exit_cleanly(self):
        for name, status in self.exits.items():
            with self.subTest(poller=name):
                self.assertEqual(status, 0)

    # -- passphrase from the environment -------------------------------------------

    def test_encrypted_key_with_passphrase_from_environment(self):
        requests = self.requests_of("delta")
        self.assertEqual({r["path"] for r in requests},
                         {HEALTH, SESSIONS_ROOT, APPS})
        for request in requests:
            self.assertEqual(request["client_cert_subject"],
                             certs.CLIENT_COMMON_NAME)

    def test_passphrase_never_logged(self):
        passphrase = self.pki.client_key_passphrase
        for name, proc in self.pollers.items():
            with self.subTest(poller=name):
                self.assertNotIn(passphrase, proc.log_text())

    # -- --check-config --------------------------------------------------------------

    def test_check_config_prints_masked_urls(self):
        result = stack.run_poller_once(self.all_config, "--check-config")
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        alpha, beta, qrs = (self.ports[n] for n in ("alpha", "beta", "qrs"))
        for url in (
                f"https://127.0.0.1:{alpha}/engine/healthcheck",
                f"https://127.0.0.1:{beta}/engine/healthcheck",
                f"https://127.0.0.1:{alpha}/qps/session?Xrfkey=" + "*" * 16,
                f"https://127.0.0.1:{alpha}/qps/sales/session?Xrfkey="
                + "*" * 16,
                f"https://127.0.0.1:{qrs}/qrs/app?xrfkey=" + "*" * 16):
            with self.subTest(url=url):
                self.assertIn(f"GET {url}\n", out)
        self.assertEqual(out.count(" GET "), 5)
        self.assertIn("X-Qlik-Xrfkey: " + "*" * 16, out)
        # No usable key anywhere.
        self.assertIsNone(re.search(r"[Xx]rfkey[=:] ?[0-9a-zA-Z]{16}", out))

    def test_check_config_lists_only_enabled_polls(self):
        result = stack.run_poller_once(self.off_config, "--check-config")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count(" GET "), 1)
        self.assertNotIn("/qps/", result.stdout)
        self.assertNotIn("/qrs/", result.stdout)

    def test_check_config_with_passphrase_from_environment(self):
        passphrase = self.pki.client_key_passphrase
        result = stack.run_poller_once(self.pass_config, "--check-config",
                                       env={PASSPHRASE_ENV: passphrase})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn(passphrase, result.stdout + result.stderr)

    def test_missing_passphrase_exits_2_naming_the_key(self):
        result = stack.run_poller_once(self.pass_config, "--check-config",
                                       env={PASSPHRASE_ENV: None})
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.cert.clientCertKey", result.stderr)

    def test_wrong_passphrase_in_file_exits_2_naming_the_key(self):
        wrong = "not-the-passphrase-7"
        config = stack.butler_config(
            self.pki, [stack.server_entry("delta", self.ports["delta"])],
            influx_port=procs.free_port(), tracker_port=procs.free_port())
        config["Butler-SOS"]["cert"].update(
            clientCertKey=self.pki.client_key_encrypted,
            clientCertPassphrase=wrong)
        path = stack.write_config(os.path.join(self.tmp, "wrong.yaml"),
                                  config)
        for args in (("--check-config",), ()):
            with self.subTest(args=args):
                result = stack.run_poller_once(path, *args)
                self.assertEqual(result.returncode, 2, result.stdout)
                self.assertIn("Butler-SOS.cert.clientCertKey", result.stderr)
                self.assertNotIn(wrong, result.stdout + result.stderr)

    def test_wrong_passphrase_in_environment_exits_2(self):
        wrong = "not-the-passphrase-8"
        result = stack.run_poller_once(self.pass_config, "--check-config",
                                       env={PASSPHRASE_ENV: wrong})
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.cert.clientCertKey", result.stderr)
        self.assertNotIn(wrong, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
