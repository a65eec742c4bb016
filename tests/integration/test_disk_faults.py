"""A failing disk under the queues (issue 8): nothing is acknowledged that was
not committed, nothing is lost, and both services recover by themselves.

The services run with tests/testing/fault_shim.c preloaded (target
qfp_fault_shim): while the file named by QFP_FAULT_FILE exists, every
fsync/fdatasync in the process fails with EIO, so every SQLite COMMIT of its
queue fails.

  * Tracker: a producer (Python, public gRPC API) streams failures over one
    stream. With the fault on, every answer refuses every failure with a
    reason, the same stream keeps answering, gRPC health says NOT_SERVING
    (and the log says why), commit errors are counted, and no refused failure
    reaches influxd. With the fault off, acknowledgements resume on the same
    stream, health is SERVING again, and at the end influxd holds every
    acknowledged failure exactly once, the refused ones (resent) included.
  * Tracker killed with SIGKILL right after refusals (fault still on):
    refused failures do not come back from its queue after the restart.
  * Poller: qs-poller's spool under the shim, faults on then off: every
    failure the fake Qlik site caused reaches influxd exactly once, and none
    reached the tracker while it could not be stored.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import time
import types
import unittest

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite
from support.influxd import InfluxD

SHIM = "tests/libqfp_fault_shim.so"  # relative to QFP_BIN_DIR
BATCH = 50
FAULT_S = 4.0                # how long the disk fails
ANSWER_TIMEOUT_S = 60        # one stream's lifetime (answers come in < 6 s)
RECOVERY_TIMEOUT_S = 30      # acknowledgements after the fault is gone
QUEUE_EMPTY_TIMEOUT_S = 60


def fault_env(fault_file: str) -> dict:
    """The environment that preloads the shim. A sanitizer build's runtime
    wants to come first; the shim has to (scripts/test.sh --sanitize)."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": procs.bin_path(SHIM),
            "QFP_FAULT_FILE": fault_file,
            "ASAN_OPTIONS": f"{asan}:verify_asan_link_order=0".lstrip(":")}


def shim_loaded(pid: int) -> bool:
    """Whether process ``pid`` has the fault shim mapped (the test must not
    pass because the shim silently did not load)."""
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        return "libqfp_fault_shim.so" in maps.read()


class Producer:
    """A poller-like producer on one stream, driven by the test: each
    ``exchange()`` resends every unacknowledged failure, adds new ones, and
    records which were acknowledged and which refused (and why)."""

    def __init__(self, address: str, base_ns: int, index: int = 0):
        self.channel = stack.reconnecting_channel(address)
        self.base_ns = base_ns
        self.index = index
        self.poller_id = f"disk-fault-producer-{index}"
        self.next_sequence = 1
        self.unacked: dict[int, object] = {}
        self.acked: set[int] = set()
        self.refused_ever: set[int] = set()
        self.reasons: collections.Counter = collections.Counter()
        self.streams = 0
        self.stream = None

    def open_stream(self):
        if self.stream is not None:
            self.stream.close()
        self.streams += 1
        self.stream = stack.FailureStream(self.channel, ANSWER_TIMEOUT_S)

    def close(self):
        if self.stream is not None:
            self.stream.close()
        self.channel.close()

    def new_failures(self, count: int) -> None:
        for _ in range(count):
            sequence = self.next_sequence
            self.next_sequence += 1
            self.unacked[sequence] = stack.unique_failure(
                self.index, sequence, base_ns=self.base_ns,
                poller=self.poller_id, instance="i-1")

    def exchange(self, new: int = BATCH, resend: bool = True):
        """One request, its answer; returns (acknowledged, refused)
        sequences of this answer."""
        if resend:
            self.new_failures(new)
            batch = [m for _, m in sorted(self.unacked.items())]
        else:
            first = self.next_sequence
            self.new_failures(new)
            batch = [self.unacked[s] for s in range(first,
                                                     self.next_sequence)]
        answer = self.stream.send(batch)
        acknowledged = [i.sequence for i in answer.accepted]
        refused = [r.id.sequence for r in answer.refused]
        assert sorted(acknowledged + refused) == sorted(
            m.id.sequence for m in batch), "an answer must cover its request"
        for sequence in acknowledged:
            self.unacked.pop(sequence, None)
            self.acked.add(sequence)
        for refusal in answer.refused:
            self.refused_ever.add(refusal.id.sequence)
            self.reasons[refusal.reason] += 1
        return acknowledged, refused

    def codes(self, sequences) -> set[str]:
        return {stack.failure_code(self.index, s) for s in sequences}


class TrackerDiskFaultTest(unittest.TestCase):

    def setUp(self):
        self.started = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="qfp-disk-faults-")
        self.processes: list[procs.Proc] = []
        self.producer: Producer | None = None
        self.influx = InfluxD(os.path.join(self.tmp, "influxd"))
        # Registered before anything starts: runs even when setUp fails.
        self.addCleanup(self._cleanup)
        self.influx.start()
        self.fault = os.path.join(self.tmp, "fault")
        self.env = fault_env(self.fault)
        self.tracker_port = procs.free_port()
        self.metrics_port = procs.free_port()
        self.wal_dir = os.path.join(self.tmp, "wal")
        config = stack.butler_config(
            types.SimpleNamespace(client_cert="", client_key="", root_ca=""),
            [], influx_port=self.influx.http_port,
            tracker_port=self.tracker_port,
            tracker_extra={"walDirectory": self.wal_dir,
                           "metricsListen": f"127.0.0.1:{self.metrics_port}"})
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        self.config = stack.write_config(
            os.path.join(self.tmp, "butler-sos.yaml"), config)
        self.base_ns = (int(time.time()) - 3600) * 1_000_000_000

    def _cleanup(self):
        if os.path.exists(self.fault):
            os.remove(self.fault)
        if self.producer is not None:
            self.producer.close()
        for proc in reversed(self.processes):
            proc.stop(timeout=5)
        self.influx.stop()
        print(f"\n  {self._testMethodName}: "
              f"{time.monotonic() - self.started:.1f} s", flush=True)
        if not os.environ.get("QFP_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- building blocks ---------------------------------------------------

    def start_tracker(self, name="tracker") -> procs.Proc:
        tracker = stack.start_tracker(self.config, self.tmp, name=name,
                                      env=self.env)
        self.processes.append(tracker)
        self.assertTrue(shim_loaded(tracker.pid))
        return tracker

    def metric(self, name: str) -> float:
        return stack.scrape_metrics(self.metrics_port).get((name, ()), 0.0)

    def health(self) -> int:
        from support.grpc_client import TrackerClient
        client = TrackerClient(f"127.0.0.1:{self.tracker_port}")
        try:
            return client.health()
        finally:
            client.close()

    def wait_health(self, status: int, timeout: float = 10):
        procs.wait_until(lambda: self.health() == status, timeout,
                         interval=0.2, message=f"health status {status}")

    def wait_log(self, proc, text, timeout):
        procs.wait_until(lambda: text in proc.log_text(), timeout,
                         interval=0.1, message=f"{text!r} in {proc.log_path}")

    def stored_codes(self) -> collections.Counter:
        return collections.Counter(
            code for _, code in stack.stored_columns(self.influx,
                                                     "error_code"))

    def wait_queue_empty(self):
        procs.wait_until(
            lambda: self.metric("qfp_tracker_queue_records") == 0,
            QUEUE_EMPTY_TIMEOUT_S, interval=0.25,
            message="qfp_tracker_queue_records == 0")

    def refuse_everything_while_faulty(self, producer, resend: bool):
        """Fault on: requests for FAULT_S seconds (at least 3); every answer
        refuses every failure of its request. Returns how many requests."""
        with open(self.fault, "w"):
            pass
        requests = 0
        until = time.monotonic() + FAULT_S
        while requests < 3 or time.monotonic() < until:
            acknowledged, refused = producer.exchange(resend=resend)
            requests += 1
            self.assertEqual(acknowledged, [],
                             "acknowledged while every commit fails")
            self.assertTrue(refused)
        return requests

    def assert_exactly_once(self, producer):
        stored = self.stored_codes()
        expected = producer.codes(producer.acked)
        self.assertEqual(sorted(expected - set(stored))[:20], [],
                         "acknowledged failures missing from influxd")
        self.assertEqual({c: n for c, n in stored.items() if n > 1}, {},
                         "failures stored more than once")
        self.assertEqual(sorted(set(stored) - expected)[:20], [],
                         "points nobody saw acknowledged")

    # -- the tests -----------------------------------------------------------

    def test_tracker_refuses_while_commits_fail_then_recovers(self):
        tracker = self.start_tracker()
        producer = self.producer = Producer(
            f"127.0.0.1:{self.tracker_port}", self.base_ns)
        producer.open_stream()
        for _ in range(10):
            acknowledged, refused = producer.exchange()
            self.assertEqual((len(acknowledged), refused), (BATCH, []))
        self.assertEqual(self.health(), 1)
        self.assertEqual(self.metric("qfp_tracker_queue_commit_errors_total"),
                         0)
        acked_before = set(producer.acked)

        # -- the disk fails ------------------------------------------------
        fault_at = time.monotonic()
        requests = self.refuse_everything_while_faulty(producer, resend=True)
        # Each refusal says why (the queue's commit error).
        self.assertTrue(all(reason for reason in producer.reasons))
        self.assertTrue(any("failures.db" in reason
                            for reason in producer.reasons),
                        list(producer.reasons)[:3])
        self.wait_health(2)  # NOT_SERVING, checked every second
        self.wait_log(tracker, "health: NOT_SERVING: ", timeout=5)
        self.assertRegex(tracker.log_text(),
                         r"health: NOT_SERVING: SQLite database \S+"
                         r"failures\.db cannot commit")
        self.assertGreater(
            self.metric("qfp_tracker_queue_commit_errors_total"), 0)
        self.assertEqual(self.metric("qfp_tracker_failures_accepted_total"),
                         len(acked_before))
        # What was acknowledged before keeps reaching influxd (reads need
        # no commit); what was refused never does.
        procs.wait_until(
            lambda: producer.codes(acked_before) <= set(self.stored_codes()),
            20, interval=0.25, message="failures acknowledged before")
        self.assertEqual(producer.codes(producer.refused_ever)
                         & set(self.stored_codes()), set())
        refused_during_fault = set(producer.refused_ever)
        fault_requests_s = time.monotonic() - fault_at

        # -- the disk works again ------------------------------------------
        os.remove(self.fault)
        recovered_at = time.monotonic()
        procs.wait_until(lambda: not producer.exchange(new=1)[1]
                         and not producer.unacked, RECOVERY_TIMEOUT_S,
                         interval=0.1, message="acknowledgements again")
        recovery_s = time.monotonic() - recovered_at
        self.assertLessEqual(refused_during_fault, producer.acked)
        for _ in range(5):
            acknowledged, refused = producer.exchange()
            self.assertEqual((len(acknowledged), refused), (BATCH, []))
        self.wait_health(1)
        self.wait_log(tracker, "health: SERVING again", timeout=5)
        self.wait_log(tracker, "commits succeed again", timeout=5)
        # One stream all along: refusals never broke it.
        self.assertEqual(producer.streams, 1)
        self.assertEqual(tracker.log_text().count("producer connected"), 1)

        self.wait_queue_empty()
        self.assertEqual(tracker.stop(timeout=30), 0)
        self.assertIn("every point written", tracker.log_text())
        self.assert_exactly_once(producer)
        print(f"\n  {len(producer.acked)} acknowledged, "
              f"{len(refused_during_fault)} refused in {requests} requests "
              f"over {fault_requests_s:.1f} s of failing commits, then "
              f"acknowledged {recovery_s:.1f} s after the disk recovered",
              end="", flush=True)

    def test_refused_failures_do_not_come_back_after_a_crash(self):
        tracker = self.start_tracker(name="tracker1")
        producer = self.producer = Producer(
            f"127.0.0.1:{self.tracker_port}", self.base_ns)
        producer.open_stream()
        for _ in range(5):
            producer.exchange()
        self.assertFalse(producer.unacked)
        # New failures only while the disk fails, so each request is new
        # work for the queue (a group of its own, refused as a whole).
        self.refuse_everything_while_faulty(producer, resend=False)
        refused = set(producer.refused_ever)
        self.assertTrue(refused)
        # Killed right after telling the producer "not stored".
        tracker.kill9()
        # The queue as the next start will find it (SQLite recovers its WAL
        # for this reader as for the tracker): no refused failure in it.
        in_queue = {stack.line_protocol_key(payload)
                    for _, payload in stack.queue_records(self.wal_dir)}
        refused_keys = {(f"producer-{producer.index:02d}",
                         stack.point_time_for(s, self.base_ns))
                        for s in refused}
        self.assertEqual(in_queue & refused_keys, set())
        os.remove(self.fault)
        tracker = self.start_tracker(name="tracker2")
        opened = stack.QUEUE_OPENED.search(tracker.log_text())
        self.assertIsNotNone(opened, tracker.log_text()[-2000:])
        self.wait_queue_empty()
        # Everything acknowledged is there; nothing refused came back.
        self.assertEqual(producer.codes(refused) & set(self.stored_codes()),
                         set())
        self.assert_exactly_once(producer)
        # The producer resends them (a new stream: the old one died with
        # the tracker) and now they are stored.
        producer.open_stream()
        procs.wait_until(lambda: not producer.exchange(new=0)[1]
                         and not producer.unacked, RECOVERY_TIMEOUT_S,
                         interval=0.1, message="refused ones acknowledged")
        self.assertLessEqual(refused, producer.acked)
        self.wait_queue_empty()
        self.assertEqual(tracker.stop(timeout=30), 0)
        self.assert_exactly_once(producer)
        print(f"\n  {len(refused)} refused before the SIGKILL, "
              f"{opened.group(3)} records reloaded after it",
              end="", flush=True)


class PollerDiskFaultTest(unittest.TestCase):
    """qs-poller's spool on a failing disk: failures wait (in memory) until
    they can be stored, are never sent unstored, and all arrive."""

    SERVERS = 12
    INTERVAL_MS = 200

    def setUp(self):
        self.started = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="qfp-disk-faults-poller-")
        self.processes: list[procs.Proc] = []
        self.site = None
        self.influx = InfluxD(os.path.join(self.tmp, "influxd"))
        self.addCleanup(self._cleanup)
        self.influx.start()
        pki = certs.make_pki(os.path.join(self.tmp, "pki"), key_type="ec")
        self.site = FakeQlikSite({"endpoints": [
            {"name": f"refused{i:02d}", "behaviour": "refuse"}
            for i in range(self.SERVERS)]}, pki).start()
        self.fault = os.path.join(self.tmp, "fault")
        self.tracker_metrics = procs.free_port()
        self.poller_metrics = procs.free_port()
        self.spool_dir = os.path.join(self.tmp, "spool")
        config = stack.butler_config(
            pki, [stack.server_entry(f"refused-{i:02d}",
                                     self.site.ports[f"refused{i:02d}"])
                  for i in range(self.SERVERS)],
            influx_port=self.influx.http_port,
            tracker_port=procs.free_port(),
            health_interval_ms=self.INTERVAL_MS, request_timeout_ms=2000,
            tracker_extra={"metricsListen":
                           f"127.0.0.1:{self.tracker_metrics}"},
            poller_extra={"spoolDirectory": self.spool_dir,
                          "metricsListen":
                          f"127.0.0.1:{self.poller_metrics}"})
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        self.config = stack.write_config(
            os.path.join(self.tmp, "butler-sos.yaml"), config)

    def _cleanup(self):
        if os.path.exists(self.fault):
            os.remove(self.fault)
        for proc in reversed(self.processes):
            proc.stop(timeout=5)
        if self.site is not None:
            self.site.stop()
        self.influx.stop()
        print(f"\n  {self._testMethodName}: "
              f"{time.monotonic() - self.started:.1f} s", flush=True)
        if not os.environ.get("QFP_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def metric(self, port: int, name: str) -> float:
        return stack.scrape_metrics(port).get((name, ()), 0.0)

    def test_poller_spool_faults_lose_nothing(self):
        tracker = stack.start_tracker(self.config, self.tmp)
        self.processes.append(tracker)
        poller = stack.start_poller_env(
            self.config, self.tmp,
            env=fault_env(self.fault),
            extra_args=["--shutdown_deadline_ms=20000"])
        self.processes.append(poller)
        self.assertTrue(shim_loaded(poller.pid))
        accepted = "qfp_tracker_failures_accepted_total"
        procs.wait_until(
            lambda: self.metric(self.tracker_metrics, accepted) >= 100, 30,
            interval=0.2, message="100 failures at the tracker")

        with open(self.fault, "w"):
            pass
        logged_at_fault = stack.failure_count(poller.log_text())
        # Whatever was committed before the fault is delivered; then nothing
        # more reaches the tracker, since nothing more is stored.
        time.sleep(1.5)
        accepted_early = self.metric(self.tracker_metrics, accepted)
        time.sleep(FAULT_S)
        self.assertEqual(self.metric(self.tracker_metrics, accepted),
                         accepted_early,
                         "the poller sent failures its spool did not store")
        # Polling went on: failures wait to be stored.
        self.assertGreater(stack.failure_count(poller.log_text()),
                           logged_at_fault + self.SERVERS * 10)
        self.assertGreater(
            self.metric(self.poller_metrics,
                        "qfp_poller_spool_commit_errors_total"), 0)
        self.assertGreater(
            self.metric(self.poller_metrics,
                        "qfp_poller_spool_store_retries_total"), 0)

        os.remove(self.fault)
        procs.wait_until(
            lambda: self.metric(self.tracker_metrics, accepted)
            > accepted_early + self.SERVERS * 10, RECOVERY_TIMEOUT_S,
            interval=0.2, message="delivery after the fault")
        self.assertIn("commits succeed again", poller.log_text())
        time.sleep(1)

        status = poller.stop(timeout=40)
        self.assertEqual(status, 0, poller.log_text()[-3000:])
        self.assertIn("0 failures left in spool",
                      poller.log_text().splitlines()[-1])
        logged = stack.failures_by_server(poller.log_text())
        total = stack.failure_count(poller.log_text())
        self.assertEqual(sum(logged.values()), total)
        procs.wait_until(
            lambda: stack.stored_point_count(self.influx) >= total, 60,
            interval=0.25, message=f"{total} points in influxd")
        self.assertEqual(tracker.stop(timeout=30), 0)
        keys = stack.stored_point_keys(self.influx)
        self.assertEqual({k: n for k, n in keys.items() if n > 1}, {})
        stored = collections.Counter(server for server, _ in keys)
        self.assertEqual(stored, logged)
        print(f"\n  {total} failures logged, all in influxd once "
              f"({accepted_early:.0f} delivered before the fault)",
              end="", flush=True)


if __name__ == "__main__":
    unittest.main()
