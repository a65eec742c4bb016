"""Mutual TLS between pollers and tracker (Butler-SOS.failedPolls.*.tls):
real gRPC, real TLS, certificates generated here.

* Who the tracker refuses: a plaintext client, a client without a
  certificate, a client whose certificate another CA signed; a good client
  is accepted and its failures land in a real influxd.
* The poller end to end over mutual TLS (the fake Qlik site's failures land
  in InfluxDB), and a poller refusing a tracker whose certificate does not
  hold the name it dials (or the serverName it is told).
* Rotation: the tracker's certificate and client CA replaced on disk are
  used by new connections within the refresh interval, without a restart.
* The loopback rule and the start checks (exit 2 naming the key).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite
from support.grpc_client import TrackerClient, failure
from support.influxd import InfluxD

# Seconds between the tracker's (and poller's) reads of its TLS files in
# these tests (refreshIntervalSeconds; the default is 5).
REFRESH_S = 1
# How long a refused peer is given to get in anyway: several reconnect
# rounds of the poller (its backoff is 200 ms to 10 s).
REFUSAL_WINDOW_S = 6.0
# Bound for the poller's warning that it cannot reach the tracker: the first
# is logged once the channel fails (a handshake on loopback), well within.
OUTAGE_LOG_S = 15


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _credentials(ca: str | None, cert: str | None = None,
                 key: str | None = None):
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca) if ca else None,
        private_key=_read(key) if key else None,
        certificate_chain=_read(cert) if cert else None)


# A channel of its own per attempt: gRPC Python otherwise shares connections
# between channels, and an attempt could ride on an earlier handshake.
_OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)


def _report(address: str, credentials, sequence: int, *, timeout=10):
    """Sends one failure on a new connection; returns the responses or
    raises grpc.RpcError."""
    client = TrackerClient(address, credentials, _OWN_CONNECTION)
    try:
        return client.report([[failure(sequence, server="mtls")]],
                             timeout=timeout)
    finally:
        client.close()


def _tls_keys(cert: str, key: str, ca: str, **extra) -> dict:
    keys = {"enable": True, "certFile": cert, "keyFile": key, "caFile": ca,
            "refreshIntervalSeconds": REFRESH_S}
    keys.update(extra)
    return keys


def _replace(path: str, source: str) -> None:
    """Replaces `path` with a copy of `source` in one rename, as a mounted
    Kubernetes secret changes."""
    temporary = f"{path}.new"
    shutil.copyfile(source, temporary)
    os.replace(temporary, path)


class Pki:
    """The link's certificates: CA "a" (trusted), CA "b" (another), each
    with a server certificate for localhost/127.0.0.1 and a client
    certificate, and from "a" a server certificate for another name."""

    def __init__(self, directory: str):
        self.dir = directory
        self.ca_a, self.ca_a_key = certs.issue_ca(directory, "ca_a", "Link CA a")
        self.ca_b, self.ca_b_key = certs.issue_ca(directory, "ca_b", "Link CA b")
        self.server_a = certs.issue_leaf(directory, "server_a", self.ca_a,
                                         self.ca_a_key, server=True)
        self.client_a = certs.issue_leaf(directory, "client_a", self.ca_a,
                                         self.ca_a_key, server=False)
        self.server_b = certs.issue_leaf(directory, "server_b", self.ca_b,
                                         self.ca_b_key, server=True)
        self.client_b = certs.issue_leaf(directory, "client_b", self.ca_b,
                                         self.ca_b_key, server=False)
        self.wrong_name = certs.issue_leaf(
            directory, "server_wrong_name", self.ca_a, self.ca_a_key,
            server=True, hostnames=("tracker.example.com",), ips=())


class MutualTlsTest(unittest.TestCase):
    """One tracker with mutual TLS in front of a real influxd."""

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-mtls-")
        cls.link = Pki(os.path.join(cls.tmp, "link"))
        # The Qlik side's PKI (the poller's cert.* keys) is another one.
        cls.qlik = certs.make_pki(os.path.join(cls.tmp, "qlik"), key_type="ec")
        cls.influx = InfluxD(os.path.join(cls.tmp, "influxd")).start()
        cls.site = FakeQlikSite({"endpoints": [
            {"name": "http500", "behaviour": "status", "status": 500},
        ]}, cls.qlik).start()
        cls.port = procs.free_port()
        cls.address = f"127.0.0.1:{cls.port}"
        cls.tracker_metrics = procs.free_port()
        cert, key = cls.link.server_a
        cls.config = stack.butler_config(
            cls.qlik, [stack.server_entry("sense-500", cls.site.ports["http500"])],
            influx_port=cls.influx.http_port, tracker_port=cls.port,
            tracker_extra={"tls": _tls_keys(cert, key, cls.link.ca_a),
                           "metricsListen":
                           f"127.0.0.1:{cls.tracker_metrics}"})
        cls.config_path = stack.write_config(
            os.path.join(cls.tmp, "tracker.yaml"), cls.config)
        cls.tracker = stack.start_tracker(cls.config_path, cls.tmp)

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "tracker", None):
            cls.tracker.stop(timeout=20)
        if getattr(cls, "site", None):
            cls.site.stop()
        if getattr(cls, "influx", None):
            cls.influx.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def metric(self, name: str) -> float:
        return stack.scrape_metrics(self.tracker_metrics).get((name, ()), 0.0)

    def assertRefused(self, credentials, sequence: int, reason: str | None):
        """The handshake fails, nothing is accepted, the refusal is counted
        and its reason logged (once per kind and 10 s)."""
        accepted = self.metric("qfp_tracker_failures_accepted_total")
        refused = self.metric("qfp_tracker_tls_handshakes_refused_total")
        with self.assertRaises(grpc.RpcError) as caught:
            _report(self.address, credentials, sequence)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE,
                         caught.exception.details())
        self.assertEqual(self.metric("qfp_tracker_failures_accepted_total"),
                         accepted)
        if reason is None:
            return
        procs.wait_until(
            lambda: self.metric("qfp_tracker_tls_handshakes_refused_total")
            > refused, 10, message="the refused handshake counted")
        procs.wait_until(
            lambda: "grpc: Handshake failed with fatal error SSL_ERROR_SSL: "
            in self.tracker.log_text() and reason in self.tracker.log_text(),
            10, message=f"the refusal logged with {reason!r}")

    def test_tracker_says_it_serves_mutual_tls(self):
        self.assertIn("mutual TLS", self.tracker.log_text())

    def test_plaintext_client_is_refused(self):
        self.assertRefused(None, 1, "wrong version number")

    def test_client_without_certificate_is_refused(self):
        self.assertRefused(_credentials(self.link.ca_a), 2,
                           "peer did not return a certificate")

    def test_client_with_certificate_of_another_ca_is_refused(self):
        cert, key = self.link.client_b
        self.assertRefused(_credentials(self.link.ca_a, cert, key), 3,
                           "certificate verify failed")

    def test_client_that_does_not_trust_the_tracker_refuses_it(self):
        # The client ends the handshake (the tracker's side of it is not
        # logged by gRPC: nothing to count there).
        cert, key = self.link.client_a
        self.assertRefused(_credentials(self.link.ca_b, cert, key), 4, None)

    def test_good_client_is_accepted_and_its_failures_land(self):
        cert, key = self.link.client_a
        before = stack.stored_point_count(self.influx)
        responses = _report(self.address,
                            _credentials(self.link.ca_a, cert, key), 100)
        self.assertEqual(sum(len(r.accepted) for r in responses), 1)
        procs.wait_until(
            lambda: stack.stored_point_count(self.influx) > before, 20,
            message="the failure's point in InfluxDB")

    def poller_config(self, name: str, **tls_extra) -> str:
        cert, key = self.link.client_a
        config = stack.butler_config(
            self.qlik,
            [stack.server_entry(name, self.site.ports["http500"])],
            influx_port=self.influx.http_port, tracker_port=self.port,
            poller_extra={"pollerId": f"poller-{name}",
                          "tls": _tls_keys(cert, key, self.link.ca_a,
                                           **tls_extra)})
        return stack.write_config(os.path.join(self.tmp, f"{name}.yaml"),
                                  config)

    def test_poller_delivers_over_mutual_tls(self):
        poller = stack.start_poller(self.poller_config("sense-e2e"), self.tmp,
                                    name="poller-e2e")
        try:
            procs.wait_until(lambda: self.points_of("sense-e2e") > 0, 30,
                             message="the poller's failures in InfluxDB")
        finally:
            self.assertEqual(poller.stop(timeout=20), 0, poller.log_text())

    def points_of(self, server: str) -> int:
        answer = self.influx.query(
            f"SELECT COUNT(\"error_count\") FROM {stack.MEASUREMENT} "
            f"WHERE server_name = '{server}'", db=stack.DB)
        for result in answer.get("results", []):
            for series in result.get("series", []):
                for row in series.get("values", []):
                    return int(row[1])
        return 0

    def assertPollerLogsOutage(self, poller: procs.Proc, why: str) -> None:
        """The poller's log names the tracker, the gRPC code and `why`
        within OUTAGE_LOG_S, and says it once (one warning per 30 s)."""
        pattern = re.compile(
            rf"(cannot reach tracker|stream to tracker) "
            rf"{re.escape(self.address)} .*: UNAVAILABLE: .*{why}.*; "
            rf"\d+ failures waiting in spool ")
        procs.wait_until(lambda: pattern.search(poller.log_text()), OUTAGE_LOG_S,
                         message=f"the outage logged with {why!r}")
        time.sleep(2)
        self.assertEqual(len(pattern.findall(poller.log_text())), 1,
                         poller.log_text())

    def test_poller_that_does_not_trust_the_tracker_says_why(self):
        poller = stack.start_poller(
            self.poller_config("sense-wrong-ca", caFile=self.link.ca_b),
            self.tmp, name="poller-wrong-ca")
        try:
            self.assertPollerLogsOutage(poller, "[Hh]andshake")
            self.assertEqual(self.points_of("sense-wrong-ca"), 0)
        finally:
            poller.stop(timeout=20)

    def test_poller_whose_certificate_the_tracker_refuses_says_so(self):
        cert, key = self.link.client_b
        poller = stack.start_poller(
            self.poller_config("sense-client-b", certFile=cert, keyFile=key),
            self.tmp, name="poller-client-b")
        try:
            self.assertPollerLogsOutage(poller, "")
            self.assertEqual(self.points_of("sense-client-b"), 0)
        finally:
            poller.stop(timeout=20)

    def test_poller_refuses_tracker_whose_name_differs(self):
        # The tracker's certificate holds localhost and 127.0.0.1; told to
        # expect another name, the poller sends nothing.
        poller = stack.start_poller(
            self.poller_config("sense-wrong-name",
                               serverName="tracker.example.com"),
            self.tmp, name="poller-wrong-name")
        try:
            procs.wait_until(
                lambda: stack.failures_logged_for(poller.log_text(),
                                                  "sense-wrong-name") >= 2,
                20, message="two failed polls in the poller's log")
            time.sleep(REFUSAL_WINDOW_S)
            self.assertEqual(self.points_of("sense-wrong-name"), 0)
            self.assertIn("tracker certificate refused: it does not name "
                          "\"tracker.example.com\"", poller.log_text())
        finally:
            poller.stop(timeout=20)


class NameCheckTest(unittest.TestCase):
    """A tracker whose certificate holds only tracker.example.com: a poller
    dialling 127.0.0.1 refuses it, one told serverName: tracker.example.com
    accepts it."""

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-mtls-name-")
        cls.link = Pki(os.path.join(cls.tmp, "link"))
        cls.qlik = certs.make_pki(os.path.join(cls.tmp, "qlik"), key_type="ec")
        cls.site = FakeQlikSite({"endpoints": [
            {"name": "http500", "behaviour": "status", "status": 500},
        ]}, cls.qlik).start()
        cls.port = procs.free_port()
        cls.metrics_port = procs.free_port()
        cert, key = cls.link.wrong_name
        config = stack.butler_config(
            cls.qlik, [], influx_port=1, tracker_port=cls.port,
            influx_points=False,
            tracker_extra={"tls": _tls_keys(cert, key, cls.link.ca_a),
                           "metricsListen": f"127.0.0.1:{cls.metrics_port}"})
        cls.tracker = stack.start_tracker(
            stack.write_config(os.path.join(cls.tmp, "t.yaml"), config),
            cls.tmp)

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "tracker", None):
            cls.tracker.stop(timeout=20)
        if getattr(cls, "site", None):
            cls.site.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_poller(self, name: str, metrics_port: int,
                   **tls_extra) -> procs.Proc:
        cert, key = self.link.client_a
        config = stack.butler_config(
            self.qlik, [stack.server_entry(name, self.site.ports["http500"])],
            influx_port=1, tracker_port=self.port,
            poller_extra={"pollerId": name,
                          "metricsListen": f"127.0.0.1:{metrics_port}",
                          "tls": _tls_keys(cert, key, self.link.ca_a,
                                           **tls_extra)})
        return stack.start_poller(
            stack.write_config(os.path.join(self.tmp, f"{name}.yaml"), config),
            self.tmp, name=name)

    def tracker_accepted(self) -> float:
        return stack.scrape_metrics(self.metrics_port).get(
            ("qfp_tracker_failures_accepted_total", ()), 0.0)

    def test_name_of_the_address_is_checked_and_serverName_overrides_it(self):
        metrics_port = procs.free_port()
        refused = self.run_poller("poller-by-address", metrics_port)
        try:
            procs.wait_until(
                lambda: stack.failures_logged_for(refused.log_text(),
                                                  "poller-by-address") >= 2,
                20, message="two failed polls in the poller's log")
            time.sleep(REFUSAL_WINDOW_S)
            self.assertEqual(self.tracker_accepted(), 0)
            self.assertIn("tracker certificate refused: it does not name "
                          "\"127.0.0.1\"", refused.log_text())
            self.assertGreaterEqual(stack.scrape_metrics(metrics_port).get(
                ("qfp_poller_tls_handshakes_refused_total", ()), 0), 1)
        finally:
            refused.stop(timeout=20)
        named = self.run_poller("poller-by-name", procs.free_port(),
                                serverName="tracker.example.com")
        try:
            procs.wait_until(lambda: self.tracker_accepted() >= 1, 30,
                             message="failures accepted from the poller "
                                     "told the tracker's name")
        finally:
            named.stop(timeout=20)


class RotationTest(unittest.TestCase):
    """The tracker's certificate, key and client CA replaced on disk: new
    connections get the new ones within the refresh interval; the tracker
    is never restarted."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qfp-mtls-rot-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.link = Pki(os.path.join(self.tmp, "link"))
        live = os.path.join(self.tmp, "live")
        os.makedirs(live)
        self.live = {name: os.path.join(live, name)
                     for name in ("tls.crt", "tls.key", "ca.crt")}
        self.install(self.link.server_a, self.link.ca_a)
        port = procs.free_port()
        self.address = f"127.0.0.1:{port}"
        config = stack.butler_config(
            stack.NoQlikPki(), [],
            influx_port=1, tracker_port=port, influx_points=False,
            tracker_extra={"tls": _tls_keys(self.live["tls.crt"],
                                            self.live["tls.key"],
                                            self.live["ca.crt"])})
        self.tracker = stack.start_tracker(
            stack.write_config(os.path.join(self.tmp, "t.yaml"), config),
            self.tmp)
        self.addCleanup(self.tracker.stop, 20)

    def install(self, server, ca):
        _replace(self.live["tls.key"], server[1])
        _replace(self.live["tls.crt"], server[0])
        _replace(self.live["ca.crt"], ca)

    def works(self, ca: str, client) -> bool:
        try:
            _report(self.address, _credentials(ca, *client), 1, timeout=5)
            return True
        except grpc.RpcError:
            return False

    def test_rotated_certificate_and_client_ca_are_picked_up(self):
        self.assertTrue(self.works(self.link.ca_a, self.link.client_a))
        self.assertFalse(self.works(self.link.ca_b, self.link.client_b))
        pid = self.tracker.pid
        self.install(self.link.server_b, self.link.ca_b)
        procs.wait_until(
            lambda: self.works(self.link.ca_b, self.link.client_b),
            timeout=REFRESH_S + 15,
            message="a client of CA b accepted after the rotation")
        # The old trust is gone both ways: the tracker no longer presents a
        # certificate of CA a, nor takes client certificates of CA a.
        self.assertFalse(self.works(self.link.ca_a, self.link.client_a))
        self.assertFalse(self.works(self.link.ca_b, self.link.client_a))
        self.assertTrue(self.tracker.running)
        self.assertEqual(self.tracker.pid, pid)


    def test_a_half_replaced_pair_fails_until_completed(self):
        # The new key with the old certificate (files replaced one at a time,
        # not as a Secret volume swaps them): gRPC 1.51 takes the pair as it
        # reads it, so handshakes fail, logged, until the pair matches again.
        _replace(self.live["tls.key"], self.link.server_b[1])
        procs.wait_until(
            lambda: "grpc: Invalid private key" in self.tracker.log_text(),
            timeout=REFRESH_S + 15, message="the mismatched pair logged")
        self.assertFalse(self.works(self.link.ca_a, self.link.client_a))
        _replace(self.live["tls.crt"], self.link.server_b[0])
        _replace(self.live["ca.crt"], self.link.ca_b)
        procs.wait_until(
            lambda: self.works(self.link.ca_b, self.link.client_b),
            timeout=REFRESH_S + 15,
            message="a client of CA b accepted once the pair matches")
        self.assertEqual(self.tracker.returncode, None)


class StartChecksTest(unittest.TestCase):
    """The loopback rule and the TLS files, checked before anything opens."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="qfp-mtls-check-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.link = Pki(os.path.join(cls.tmp, "link"))

    def check(self, binary: str, tracker=None, poller=None, *args):
        config = stack.butler_config(
            stack.NoQlikPki(), [], influx_port=1, tracker_port=50051,
            influx_points=False, tracker_extra=tracker, poller_extra=poller)
        path = stack.write_config(
            os.path.join(self.tmp, f"c{time.monotonic_ns()}.yaml"), config)
        return subprocess.run(
            [procs.bin_path(binary), "--config", path, "--check-config",
             *args], capture_output=True, text=True, timeout=30)

    def test_tracker_refuses_plaintext_on_all_interfaces(self):
        result = self.check("qs-error-tracker", {"listen": "0.0.0.0:50051"})
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.failedPolls.tracker.listen: \"0.0.0.0:50051\""
                      " is not a loopback address", result.stderr)
        self.assertIn("Butler-SOS.failedPolls.tracker.tls.allowPlaintext",
                      result.stderr)

    def test_tracker_refuses_plaintext_listen_flag(self):
        result = self.check("qs-error-tracker", None, None,
                            "--listen=10.1.2.3:50051")
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("is not a loopback address", result.stderr)

    def test_tracker_plaintext_allowed_when_consented(self):
        result = self.check("qs-error-tracker",
                            {"listen": "0.0.0.0:50051",
                             "tls": {"allowPlaintext": True}})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("gRPC plaintext", result.stdout)

    def test_tracker_loopback_plaintext_is_the_default(self):
        result = self.check("qs-error-tracker", {"listen": "[::1]:50051"})
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_poller_refuses_plaintext_to_a_remote_tracker(self):
        result = self.check("qs-poller", None,
                            {"trackerAddress": "tracker.example.com:50051"})
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.failedPolls.poller.trackerAddress: "
                      "\"tracker.example.com:50051\" is not a loopback "
                      "address", result.stderr)
        result = self.check("qs-poller", None,
                            {"trackerAddress": "tracker.example.com:50051",
                             "tls": {"allowPlaintext": True}})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Tracker link: plaintext", result.stdout)

    def test_tracker_with_tls_on_all_interfaces_is_valid(self):
        cert, key = self.link.server_a
        result = self.check("qs-error-tracker",
                            {"listen": "0.0.0.0:50051",
                             "tls": _tls_keys(cert, key, self.link.ca_a)})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("gRPC mutual TLS", result.stdout)

    def test_missing_and_wrong_files_name_their_keys(self):
        cert, key = self.link.server_a
        missing = os.path.join(self.tmp, "missing.pem")
        other_key = self.link.client_a[1]
        cases = [
            ({"certFile": missing}, "tls.certFile: cannot read certificate "
             f"file \"{missing}\""),
            ({"keyFile": missing}, f"tls.keyFile: cannot read key file "
             f"\"{missing}\""),
            ({"caFile": key}, "tls.caFile: "),
            ({"keyFile": other_key}, "tls.keyFile: the key in "),
            ({"certFile": None}, "tls.certFile: "),
        ]
        for change, expected in cases:
            with self.subTest(change=change):
                keys = _tls_keys(cert, key, self.link.ca_a)
                keys.update(change)
                keys = {k: v for k, v in keys.items() if v is not None}
                for binary, side in (("qs-error-tracker", "tracker"),
                                     ("qs-poller", "poller")):
                    result = self.check(
                        binary, {"tls": keys} if side == "tracker" else None,
                        {"tls": keys} if side == "poller" else None)
                    self.assertEqual(result.returncode, 2, result.stdout)
                    self.assertIn(f"Butler-SOS.failedPolls.{side}.{expected}",
                                  result.stderr)

    def test_unknown_tls_key_is_an_error(self):
        result = self.check("qs-error-tracker",
                            {"tls": {"enabled": True}})
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.failedPolls.tracker.tls.enabled: unknown "
                      "key (did you mean enable?)", result.stderr)

    def test_start_with_unreadable_file_exits_2(self):
        cert, key = self.link.server_a
        config = stack.butler_config(
            stack.NoQlikPki(), [], influx_port=1, tracker_port=procs.free_port(),
            influx_points=False,
            tracker_extra={"tls": _tls_keys(
                cert, os.path.join(self.tmp, "gone.pem"), self.link.ca_a)})
        path = stack.write_config(os.path.join(self.tmp, "start.yaml"),
                                  config)
        result = subprocess.run(
            [procs.bin_path("qs-error-tracker"), "--config", path],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("Butler-SOS.failedPolls.tracker.tls.keyFile: cannot "
                      "read key file", result.stderr)


if __name__ == "__main__":
    unittest.main()
