"""Hostile Qlik Sense endpoints (issue 11 §4), against a real influxd.

Each hostile endpoint is health-checked by a poller of its own, so that
each poller's peak memory (VmHWM) can be compared with a control poller
that only ever sees healthy answers. For each endpoint every completed poll
gives one failure with the category below, and the poller's memory stays
within a few MiB of the control's:

=================  ===========================================  ===================
endpoint           what it does                                 category
=================  ===========================================  ===================
``endless``        a 200 JSON body that never ends              invalid_response
``drip``           a 200 announcing 1 MiB, then 1 byte/second   timeout
``huge_headers``   a 200 with 1 MiB of header lines             invalid_response
``never_close``    a complete body, no length, never closed     timeout
``redirect_loop``  302 to itself                                unknown
``redirect_http``  301 to plain http                            unknown
``redirect_away``  302 to another (healthy) host                unknown
=================  ===========================================  ===================

A gzip bomb and a 50 MiB answer are in test_large_answers.
"""

from __future__ import annotations

import os
import unittest

from support import procs, stack
from support.scenario import ScenarioTestCase

REQUEST_TIMEOUT_MS = 3000
BODY_CAP = 4 << 20
# What a poller may hold beyond the control poller's peak (libcurl's and
# OpenSSL's buffers, the parser's state).
RSS_MARGIN_KIB = 8 * 1024
FAILURES_WANTED = 2


def hostile_endpoints(ports_of_control: str) -> dict:
    """name -> (the endpoint's spec, the expected fields of its points
    other than tags, request_url and request_timeout_ms)."""
    health = "/engine/healthcheck"
    return {
        "endless": ({"behaviour": "endless_body"}, {
            "error_category": "invalid_response",
            "error_code": "ERR_INVALID_RESPONSE", "http_status": 200}),
        "drip": ({"behaviour": "drip"}, {
            "error_category": "timeout", "error_code": "ECONNABORTED"}),
        "huge_headers": ({"behaviour": "huge_headers"}, {
            "error_category": "invalid_response",
            "error_code": "ERR_INVALID_RESPONSE"}),
        "never_close": ({"behaviour": "never_close"}, {
            "error_category": "timeout", "error_code": "ECONNABORTED"}),
        "redirect_loop": ({"behaviour": "status", "status": 302,
                           "headers": {"Location": health}}, {
            "error_category": "unknown",
            "error_code": "ERR_FR_TOO_MANY_REDIRECTS"}),
        "redirect_http": ({"behaviour": "status", "status": 301,
                           "headers": {"Location":
                                       f"http://127.0.0.1:1{health}"}}, {
            "error_category": "unknown",
            "error_code": "CURLE_UNSUPPORTED_PROTOCOL", "http_status": 301}),
        "redirect_away": ({"behaviour": "status", "status": 302,
                           "headers": {"Location": f"https://localhost:"
                                       f"{ports_of_control}{health}"}}, {
            "error_category": "unknown",
            "error_code": "ERR_REDIRECT_TO_OTHER_ORIGIN",
            "http_status": 302}),
    }


class HostileQlikTest(ScenarioTestCase):
    TMP_PREFIX = "qfp-hostile-qlik-"

    @classmethod
    def start_scenario(cls):
        cls.pollers = {}
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        # The control's port is needed before the redirect that names it:
        # a first site serves the control alone.
        cls.control_site = cls.start_site(
            [{"name": "control", "behaviour": "healthy"}], cls.pki)
        control_port = cls.control_site.ports["control"]
        cls.expected = hostile_endpoints(str(control_port))
        cls.site = cls.start_site(
            [{"name": name, **spec}
             for name, (spec, _) in cls.expected.items()], cls.pki)
        ports = dict(cls.site.ports, control=control_port)
        cls.ports = ports
        tracker_port = procs.free_port()

        def config(name):
            path = os.path.join(cls.tmp, f"{name}.yaml")
            return stack.write_config(path, stack.butler_config(
                cls.pki, [stack.server_entry(f"hostile-{name}",
                                             ports[name])],
                influx_port=cls.influx.http_port, tracker_port=tracker_port,
                health_interval_ms=1000,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                poller_extra={"pollerId": f"hostile-{name}",
                              "maxResponseBytes": BODY_CAP}))

        names = [*cls.expected, "control"]
        configs = {name: config(name) for name in names}
        cls.tracker = cls.started_process(
            stack.start_tracker(configs["control"], cls.tmp))
        for name in names:
            cls.pollers[name] = cls.started_process(stack.start_poller(
                configs[name], cls.tmp, name=f"poller-{name}"))

        def done():
            return all(len(stack.failure_lines(
                cls.pollers[name].log_text())) >= FAILURES_WANTED
                for name in cls.expected)

        try:
            try:
                procs.wait_until(done, timeout=60, interval=0.25,
                                 message="failures from every endpoint")
            except TimeoutError:
                counts = {name: len(stack.failure_lines(
                    cls.pollers[name].log_text())) for name in cls.expected}
                raise AssertionError(
                    f"wanted {FAILURES_WANTED} failures from every hostile "
                    f"endpoint within 60 s; failures logged: {counts}"
                ) from None
            cls.peak_kib = {name: procs.peak_rss_kib(proc.pid)
                            for name, proc in cls.pollers.items()}
        finally:
            cls.exits = stack.stop_all(list(cls.pollers.values()))
        cls.logged = {name: len(stack.failure_lines(proc.log_text()))
                      for name, proc in cls.pollers.items()}
        procs.wait_until(
            lambda: stack.stored_point_count(cls.influx)
            >= sum(cls.logged.values()), timeout=20, interval=0.25,
            message="every logged failure stored")
        cls.tracker_exit = cls.tracker.stop(timeout=20)
        cls.points = stack.stored_points(cls.influx)

    def check_endpoint(self, name):
        host = f"127.0.0.1:{self.ports[name]}"
        points = [stack.point_fields(p) for p in self.points
                  if p["host"] == host]
        self.assertGreaterEqual(len(points), FAILURES_WANTED, name)
        self.assertEqual(len(points), self.logged[name],
                         "one point per failure logged")
        want = {"error_type": "HEALTH_API", "server_name": f"hostile-{name}",
                "host": host, "error_count": 1,
                "request_timeout_ms": REQUEST_TIMEOUT_MS,
                "request_url": f"https://{host}/engine/healthcheck",
                **self.expected[name][1]}
        for point in points:
            got = {k: v for k, v in point.items() if k in want}
            self.assertEqual(got, want, name)
        if procs.SANITIZED:
            return  # RSS under ASan is its quarantine's
        peak, control = self.peak_kib[name], self.peak_kib["control"]
        self.assertLess(peak - control, RSS_MARGIN_KIB,
                        f"{name}: peak RSS {peak} KiB, control {control} KiB")

    def test_endless_body(self):
        self.check_endpoint("endless")

    def test_slow_drip(self):
        self.check_endpoint("drip")

    def test_huge_headers(self):
        self.check_endpoint("huge_headers")

    def test_never_closes(self):
        self.check_endpoint("never_close")

    def test_redirect_loop(self):
        self.check_endpoint("redirect_loop")

    def test_redirect_to_http(self):
        self.check_endpoint("redirect_http")

    def test_redirect_to_another_host(self):
        self.check_endpoint("redirect_away")

    def test_control_is_healthy(self):
        host = f"127.0.0.1:{self.ports['control']}"
        self.assertEqual([p for p in self.points if p["host"] == host], [])
        self.assertEqual(self.logged["control"], 0)

    def test_processes_exit_cleanly(self):
        self.assertEqual(set(self.exits.values()), {0}, self.exits)
        self.assertEqual(self.tracker_exit, 0)


if __name__ == "__main__":
    unittest.main()
