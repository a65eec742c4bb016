"""The failure taxonomy of §4, golden per scenario and per source.

One run of the whole system: a fake Qlik Sense site with one endpoint per
scenario, a private influxd, one qs-error-tracker and one qs-poller per
scenario. Each poller polls its scenario's endpoint as all three sources:
the engine health check of server "tax-S", the proxy sessions of the virtual
proxies "/" and "/sales" of server "tax-S-sessions" (whose own health check
goes to a healthy endpoint, so that the PROXY_API point's host tag must come
from ``userSessions.host``) and the QRS app list (``appNames.hostIP`` names
the endpoint with its port). A poller has a single ``appNames.hostIP``,
hence one poller per scenario; they all report to the same tracker, which
writes into the same influxd.

Every (source, server, virtual proxy) must have produced points, all equal
(time aside) to the golden point of its scenario: the exact tags and fields
Butler SOS writes (§3), with the category and code of §4. A second set of
pollers with ``rejectUnauthorized: false`` polls the certificate scenarios
and must find them healthy (no failure, no point).
"""

from __future__ import annotations

import os
import time
import unittest

from support import certs, procs, stack

from support.scenario import ScenarioTestCase

# The black hole times out quickly; under ASan a redirect loop (a TLS
# handshake per hop) needs longer than 1.5 s to reach the redirect limit.
REQUEST_TIMEOUT_MS = 3500 if procs.SANITIZED else 1500
INTERVAL_MS = 4000 if procs.SANITIZED else 2000  # every source and poller
VIRTUAL_PROXIES = ("/", "/sales")
SOURCES = ("HEALTH_API", "PROXY_API", "APP_NAMES_EXTRACT")


def _status(status: int) -> dict:
    return {"behaviour": "status", "status": status}


# scenario -> (fake endpoint spec without its name, the point's fields beyond
# error_count, request_url and request_timeout_ms; "{port}" is replaced).
SCENARIOS = {
    "status_500": (_status(500), {
        "error_category": "http_5xx", "error_code": "ERR_BAD_RESPONSE",
        "http_status": 500}),
    "status_503": (_status(503), {
        "error_category": "http_5xx", "error_code": "ERR_BAD_RESPONSE",
        "http_status": 503}),
    "status_401": (_status(401), {
        "error_category": "auth_error", "error_code": "ERR_BAD_REQUEST",
        "http_status": 401}),
    "status_403": (_status(403), {
        "error_category": "auth_error", "error_code": "ERR_BAD_REQUEST",
        "http_status": 403}),
    "status_404": (_status(404), {
        "error_category": "not_found", "error_code": "ERR_BAD_REQUEST",
        "http_status": 404}),
    "status_429": (_status(429), {
        "error_category": "rate_limited", "error_code": "ERR_BAD_REQUEST",
        "http_status": 429}),
    "status_400": (_status(400), {
        "error_category": "http_4xx", "error_code": "ERR_BAD_REQUEST",
        "http_status": 400}),
    "refuse": ({"behaviour": "refuse"}, {
        "error_category": "connection_refused", "error_code": "ECONNREFUSED",
        "remote_address": "127.0.0.1", "remote_port": "{port}",
        "syscall": "connect"}),
    "blackhole": ({"behaviour": "blackhole"}, {
        "error_category": "timeout", "error_code": "ECONNABORTED"}),
    "reset": ({"behaviour": "reset"}, {
        "error_category": "connection_reset", "error_code": "ECONNRESET",
        "syscall": "read"}),
    # Issue 9 §4: TCP accepted and reset at once, before TLS: the same
    # category and fields as any reset (Butler SOS: syscall read, no
    # address).
    "reset_on_accept": ({"behaviour": "reset_on_accept"}, {
        "error_category": "connection_reset", "error_code": "ECONNRESET",
        "syscall": "read"}),
    # Every path redirects to itself: past the 5 redirects followed, no
    # response reaches Butler SOS's code, so no http_status.
    "redirect_loop": ({"behaviour": "status", "status": 302,
                       "headers": {"Location": "?again"}}, {
        "error_category": "unknown",
        "error_code": "ERR_FR_TOO_MANY_REDIRECTS"}),
    "wrong_ca": ({"behaviour": "wrong_ca"}, {
        "error_category": "certificate_error",
        "error_code": "UNABLE_TO_VERIFY_LEAF_SIGNATURE"}),
    "wrong_ca_chain": ({"behaviour": "wrong_ca_chain"}, {
        "error_category": "certificate_error",
        "error_code": "SELF_SIGNED_CERT_IN_CHAIN"}),
    "selfsigned": ({"behaviour": "selfsigned"}, {
        "error_category": "certificate_error",
        "error_code": "DEPTH_ZERO_SELF_SIGNED_CERT"}),
    "expired_cert": ({"behaviour": "expired_cert"}, {
        "error_category": "certificate_error",
        "error_code": "CERT_HAS_EXPIRED"}),
    # The poller dials 127.0.0.1; the certificate names only
    # wrong.example.com.
    "hostname_mismatch": ({"behaviour": "hostname_mismatch"}, {
        "error_category": "certificate_error",
        "error_code": "ERR_TLS_CERT_ALTNAME_INVALID"}),
    "plain_http": ({"behaviour": "plain_http"}, {
        "error_category": "certificate_error", "error_code": "EPROTO",
        "syscall": "write"}),
    "html": ({"behaviour": "html"}, {
        "error_category": "invalid_response",
        "error_code": "ERR_INVALID_RESPONSE", "http_status": 200}),
    # Content-Length announces the whole body: a short transfer.
    "truncated_json": ({"behaviour": "truncated_json"}, {
        "error_category": "invalid_response",
        "error_code": "ERR_INVALID_RESPONSE", "http_status": 200}),
    # No Content-Length: a complete 200 whose JSON is cut.
    "truncated_json_close": (
        {"behaviour": "truncated_json", "framing": "close"}, {
            "error_category": "invalid_response",
            "error_code": "ERR_INVALID_RESPONSE", "http_status": 200}),
}

# Certificate scenarios a poller with rejectUnauthorized false accepts.
LAX_SCENARIOS = ("wrong_ca", "wrong_ca_chain", "selfsigned", "expired_cert",
                 "hostname_mismatch")
LAX_PATHS = ("/engine/healthcheck", "/qps/session", "/qps/sales/session",
             "/qrs/app")

CONTROL = "healthy"  # a healthy endpoint polled the same way: no point
# Healthy answers gzipped by a proxy whether asked or not (issue 9 §3c):
# decoded, so no failure and no point.
GZIP = "gzip"

FLOAT_FIELDS = ("error_count", "http_status", "remote_port",
                "request_timeout_ms")
STRING_FIELDS = ("error_category", "error_code", "remote_address",
                 "request_url", "syscall")


def server_name(scenario: str) -> str:
    return f"tax-{scenario}"


def sessions_server_name(scenario: str) -> str:
    return f"{server_name(scenario)}-sessions"


def lax_endpoint(scenario: str) -> str:
    return f"lax-{scenario}"


def request_path(source: str, virtual_proxy: str | None) -> str:
    if source == "HEALTH_API":
        return "/engine/healthcheck"
    if source == "PROXY_API":
        return "/qps/session" if virtual_proxy == "/" else \
            f"/qps{virtual_proxy}/session"
    return "/qrs/app"


def golden_point(scenario: str, source: str, port: int,
                 virtual_proxy: str | None = None) -> dict:
    """The exact point (tags and fields, no time) expected in influxd."""
    host = f"127.0.0.1:{port}"
    point = {
        "error_type": source,
        # APP_NAMES_EXTRACT: server_name is appNames.hostIP as written.
        "server_name": {"HEALTH_API": server_name(scenario),
                        "PROXY_API": sessions_server_name(scenario),
                        "APP_NAMES_EXTRACT": host}[source],
        "host": host,
        "error_count": 1,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "request_url": f"https://{host}{request_path(source, virtual_proxy)}",
    }
    if source == "PROXY_API":
        point["virtual_proxy"] = virtual_proxy
    for field, value in SCENARIOS[scenario][1].items():
        point[field] = port if value == "{port}" else value
    return point


def poller_config(pki, scenario_name: str, port: int, *, control_port: int,
                  influx_port: int, tracker_port: int,
                  reject_unauthorized: bool = True,
                  name: str | None = None) -> dict:
    """All three sources against one fake endpoint: server NAME's health
    check, the sessions of server NAME-sessions (health-checked on the
    healthy control endpoint) and the QRS."""
    name = name or server_name(scenario_name)
    config = stack.butler_config(
        pki, [stack.server_entry(name, port),
              stack.server_entry(f"{name}-sessions", control_port,
                                 sessions_port=port,
                                 virtual_proxies=list(VIRTUAL_PROXIES))],
        influx_port=influx_port, tracker_port=tracker_port,
        health_interval_ms=INTERVAL_MS, request_timeout_ms=REQUEST_TIMEOUT_MS,
        sessions_interval_ms=INTERVAL_MS,
        app_names_host=f"127.0.0.1:{port}", app_names_interval_ms=INTERVAL_MS,
        poller_extra={"pollerId": f"taxonomy-{name}",
                      # The QRS's own default (120 s) would outlast the run.
                      "appNamesTimeout": REQUEST_TIMEOUT_MS})
    config["Butler-SOS"]["serversToMonitor"]["rejectUnauthorized"] = \
        reject_unauthorized
    return config


class PollTaxonomyTest(ScenarioTestCase):
    """One run: every scenario through every source into influxd."""
    TMP_PREFIX = "qfp-taxonomy-"

    @classmethod
    def start_scenario(cls):
        cls.pollers = []
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        endpoints = [dict(spec, name=scenario)
                     for scenario, (spec, _) in SCENARIOS.items()]
        endpoints += [{"name": lax_endpoint(s), "behaviour": s}
                      for s in LAX_SCENARIOS]
        endpoints.append({"name": CONTROL, "behaviour": "healthy"})
        endpoints.append({"name": GZIP, "behaviour": "gzip"})
        cls.site = cls.start_site(endpoints, cls.pki)
        cls.ports = cls.site.ports
        tracker_port = procs.free_port()

        def config_file(filename, config):
            return stack.write_config(os.path.join(cls.tmp, filename), config)

        common = {"influx_port": cls.influx.http_port,
                  "tracker_port": tracker_port,
                  "control_port": cls.ports[CONTROL]}
        configs = {scenario: config_file(
            f"{scenario}.yaml",
            poller_config(cls.pki, scenario, cls.ports[scenario], **common))
            for scenario in [*SCENARIOS, CONTROL, GZIP]}
        lax_configs = {scenario: config_file(
            f"lax-{scenario}.yaml",
            poller_config(cls.pki, scenario, cls.ports[lax_endpoint(scenario)],
                          reject_unauthorized=False,
                          name=lax_endpoint(scenario), **common))
            for scenario in LAX_SCENARIOS}

        cls.tracker = cls.started_process(
            stack.start_tracker(configs[CONTROL], cls.tmp))
        cls.started_ns = time.time_ns()
        for scenario, path in configs.items():
            cls.pollers.append(cls.started_process(stack.start_poller(
                path, cls.tmp, name=f"poller-{scenario}")))
        for scenario, path in lax_configs.items():
            cls.pollers.append(cls.started_process(stack.start_poller(
                path, cls.tmp, name=f"poller-lax-{scenario}")))

        cls.expected = {}
        for scenario in SCENARIOS:
            port = cls.ports[scenario]
            for point in (golden_point(scenario, "HEALTH_API", port),
                          *[golden_point(scenario, "PROXY_API", port, vp)
                            for vp in VIRTUAL_PROXIES],
                          golden_point(scenario, "APP_NAMES_EXTRACT", port)):
                cls.expected[stack.point_key(point)] = (scenario, point)

        def everything_seen():
            stored = {stack.point_key(p) for p in stack.stored_points(
                cls.influx)}
            # A lax endpoint is done once each path was asked twice: the
            # first answer was then read and judged (a target is never
            # polled again while its previous poll runs).
            lax_done = all(
                sum(1 for r in cls.site.requests(lax_endpoint(s))
                    if r["path"] == path) >= 2
                for s in LAX_SCENARIOS for path in LAX_PATHS)
            gzip_done = all(
                sum(1 for r in cls.site.requests(GZIP)
                    if r["path"] == path) >= 2 for path in LAX_PATHS)
            return lax_done and gzip_done and set(cls.expected) <= stored

        try:
            procs.wait_until(everything_seen, timeout=45, interval=0.25,
                             message="a point of every scenario and source, "
                                     "two healthy rounds of the lax pollers")
        finally:
            cls.poller_exits = stack.stop_all(cls.pollers)
            cls.tracker_exit = cls.tracker.stop(timeout=20)
            cls.stopped_ns = time.time_ns()
        cls.points = stack.stored_points(cls.influx, epoch="ns")

    # -- helpers -------------------------------------------------------------

    def points_for(self, key):
        return [p for p in self.points if stack.point_key(p) == key]

    def poller_log(self, scenario):
        return next(p for p in self.pollers
                    if p.name == f"poller-{scenario}").log_text()

    def check_scenario(self, scenario):
        """Every point of the scenario's four targets equals its golden."""
        for key, (expected_scenario, golden) in self.expected.items():
            if expected_scenario != scenario:
                continue
            with self.subTest(source=key[0], virtual_proxy=key[2]):
                points = self.points_for(key)
                self.assertTrue(points, f"no point for {key}")
                for point in points:
                    self.assertEqual(stack.point_fields(point), golden)

    # -- one golden test per scenario (all three sources each) -----------------

    def test_status_500(self):
        self.check_scenario("status_500")

    def test_status_503(self):
        self.check_scenario("status_503")

    def test_status_401(self):
        self.check_scenario("status_401")

    def test_status_403(self):
        self.check_scenario("status_403")

    def test_status_404(self):
        self.check_scenario("status_404")

    def test_status_429(self):
        self.check_scenario("status_429")

    def test_status_400(self):
        self.check_scenario("status_400")

    def test_refuse(self):
        self.check_scenario("refuse")

    def test_blackhole(self):
        self.check_scenario("blackhole")

    def test_reset(self):
        self.check_scenario("reset")

    def test_wrong_ca(self):
        self.check_scenario("wrong_ca")

    def test_wrong_ca_chain(self):
        self.check_scenario("wrong_ca_chain")

    def test_selfsigned(self):
        self.check_scenario("selfsigned")

    def test_expired_cert(self):
        self.check_scenario("expired_cert")

    def test_hostname_mismatch(self):
        self.check_scenario("hostname_mismatch")

    def test_plain_http(self):
        self.check_scenario("plain_http")

    def test_html(self):
        self.check_scenario("html")

    def test_truncated_json(self):
        self.check_scenario("truncated_json")

    def test_truncated_json_close(self):
        self.check_scenario("truncated_json_close")

    def test_reset_on_accept(self):
        self.check_scenario("reset_on_accept")

    def test_redirect_loop(self):
        self.check_scenario("redirect_loop")
        # Butler SOS follows 5 redirects: the first request and 5 more.
        queries = [r["query"] for r in self.site.requests("redirect_loop")
                   if r["path"] == "/engine/healthcheck"]
        self.assertGreaterEqual(queries.count("again"), 5, queries)

    def test_every_scenario_has_a_golden_test(self):
        for scenario in SCENARIOS:
            self.assertTrue(hasattr(self, f"test_{scenario}"), scenario)

    # -- across scenarios --------------------------------------------------------

    def test_no_unexpected_points(self):
        """Nothing from the healthy control or the lax pollers; every point
        belongs to a scenario's target."""
        unexpected = [stack.point_fields(p) for p in self.points
                      if stack.point_key(p) not in self.expected]
        self.assertEqual(unexpected, [])

    def test_numeric_fields_are_floats_on_influxdb_1(self):
        types = self.influx.field_types(stack.MEASUREMENT, stack.DB)
        self.assertEqual(types, {**{f: "float" for f in FLOAT_FIELDS},
                                 **{f: "string" for f in STRING_FIELDS}})
        self.assertEqual(
            sorted(self.influx.tag_keys(stack.MEASUREMENT, stack.DB)),
            ["error_type", "host", "server_name", "virtual_proxy"])

    def test_request_url_never_carries_a_query(self):
        for point in self.points:
            self.assertNotIn("?", point["request_url"])
            self.assertNotIn("xrfkey", point["request_url"].lower())
            self.assertEqual(point["request_timeout_ms"], REQUEST_TIMEOUT_MS)

    def test_one_point_per_failed_poll_logged(self):
        """The pollers' failure logs and influxd agree, per scenario."""
        for scenario in SCENARIOS:
            log = self.poller_log(scenario)
            with self.subTest(scenario=scenario):
                logged = len(stack.failure_lines(log))
                stored = sum(1 for key, (s, _) in self.expected.items()
                             if s == scenario
                             for _ in self.points_for(key))
                self.assertEqual(stored, logged)

    def test_point_times_within_the_run(self):
        for point in self.points:
            self.assertGreaterEqual(point["time"], self.started_ns)
            self.assertLessEqual(point["time"], self.stopped_ns)

    def test_processes_exit_cleanly(self):
        for name, status in self.poller_exits.items():
            with self.subTest(poller=name):
                self.assertEqual(status, 0)
        self.assertEqual(self.tracker_exit, 0)

    def test_gzipped_answers_are_healthy(self):
        self.assertEqual(stack.failure_lines(self.poller_log(GZIP)), [])
        requests = self.site.requests(GZIP)
        self.assertEqual({r["path"] for r in requests}, set(LAX_PATHS))
        for request in requests:
            encodings = [v for k, v in request["headers"]
                         if k.lower() == "accept-encoding"]
            self.assertEqual(len(encodings), 1, request["headers"])
            self.assertIn("gzip", encodings[0].split(", "))
        host = f"127.0.0.1:{self.ports[GZIP]}"
        self.assertEqual([p for p in self.points if p["host"] == host], [])

    def test_healthy_control_has_no_failure(self):
        self.assertEqual(stack.failure_lines(self.poller_log(CONTROL)), [])
        paths = {r["path"] for r in self.site.requests(CONTROL)}
        self.assertEqual(paths, set(LAX_PATHS))

    def test_reject_unauthorized_false_accepts_any_certificate(self):
        for scenario in LAX_SCENARIOS:
            with self.subTest(scenario=scenario):
                log = self.poller_log(f"lax-{scenario}")
                self.assertEqual(stack.failure_lines(log), [])
                requests = self.site.requests(lax_endpoint(scenario))
                self.assertEqual({r["path"] for r in requests},
                                 set(LAX_PATHS))
                for request in requests:
                    self.assertEqual(request["client_cert_subject"],
                                     certs.CLIENT_COMMON_NAME)
                host = f"127.0.0.1:{self.ports[lax_endpoint(scenario)]}"
                names = (lax_endpoint(scenario),
                         f"{lax_endpoint(scenario)}-sessions", host)
                self.assertEqual(
                    [p for p in self.points if p["host"] == host
                     or p["server_name"] in names], [])


if __name__ == "__main__":
    unittest.main()
