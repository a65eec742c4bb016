"""A wall-clock step leaves the real qs-poller's polling cadence alone
(issue 8 §3).

The poller runs under libfaketime with its wall clock read from a file
(FAKETIME_TIMESTAMP_FILE, re-read on every call) and its monotonic clock
left real (FAKETIME_DONT_FAKE_MONOTONIC=1). Writing an offset such as
``-1h`` into the file steps the running process's wall clock, as an NTP
correction or a resumed VM does. The fake Qlik Sense site and this test run
on the real clock.

Each phase writes an offset (PHASES), then counts the requests reaching the
fake site over a window: the count must match the configured interval whatever
the step. A scheduler timed on the wall clock polls nothing for an hour
after the -1h step. Each phase also checks that the step really happened
inside the poller: its log timestamps and the occurred_at of the failures
it reports (to a small gRPC tracker in this process) move by the offset.

Run from tests/:  /usr/bin/python3 -m unittest -v integration.test_clock_steps
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite
from support.grpc_client import pb, pb_grpc

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

INTERVAL_S = 0.25
WINDOW_S = 2.0
PER_WINDOW = round(WINDOW_S / INTERVAL_S)  # polls of one target per window
# A window's edges can cut a poll either way, and a loaded machine can start
# one late; a stopped scheduler gives 0 and a catch-up burst many more.
TOLERANCE = 2
# How far a stepped reading may be from real time plus the offset.
CLOCK_SLACK_S = 30
# abseil's clock, which stamps occurred_at, notices a step up to about 2 s
# late (it re-reads the kernel clock every ~2 s); the window starts once it
# has.
STEP_SEEN_TIMEOUT_S = 8

HOUR = 3600
# (name, offset of the poller's wall clock from real time, in seconds). The
# steps: -1 h, +1 h (back to real time), +1 h (ahead of real time), -1 h
# (back to real time).
#
# The poller is stopped at offset 0, and that is what the last step is for:
# libfaketime fakes what the process reads, but abseil 20220623 (and gRPC
# through it) times a Mutex/CondVar wait as an absolute CLOCK_REALTIME
# deadline that the kernel measures on the real clock. Under a standing +1 h
# offset every such timed wait lasts an hour longer (the tracker client's
# shutdown then hangs), under -1 h it returns at once. A real step cannot do
# that to waits begun after it, so it is not what this test is about.
PHASES = [("before any step", 0), ("after -1h", -HOUR),
          ("after +1h, back to real time", 0),
          ("after +1h, ahead of real time", HOUR),
          ("after -1h, back to real time", 0)]

# spdlog's pattern (common/logging.cc): 2026-11-30T11:35:33.524Z warn ...
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ",
                      re.MULTILINE)


def offset_spec(seconds: int) -> str:
    """libfaketime's relative offset syntax: "+0", "-3600", "+3600"."""
    return f"{seconds:+d}"


class RecordingTracker(pb_grpc.FailedPollTrackerServicer):
    """Accepts every failure and keeps (real receive time, failure)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._received: list[tuple[float, object]] = []

    def ReportFailures(self, request_iterator, context):
        for request in request_iterator:
            now = time.time()
            with self._lock:
                self._received.extend((now, f) for f in request.failures)
            yield pb.ReportFailuresResponse(
                accepted=[f.id for f in request.failures])

    def received(self) -> list:
        with self._lock:
            return list(self._received)


@unittest.skipUnless(os.path.exists(LIBFAKETIME),
                     f"{LIBFAKETIME} missing (apt-get install faketime)")
class ClockStepTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-clock-")
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"), key_type="ec")
        cls.site = FakeQlikSite({"endpoints": [
            {"name": "ok", "behaviour": "healthy"},
            {"name": "bad", "behaviour": "status", "status": 500},
        ]}, cls.pki).start()

        cls.tracker = RecordingTracker()
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_FailedPollTrackerServicer_to_server(cls.tracker,
                                                        cls.server)
        tracker_port = cls.server.add_insecure_port("127.0.0.1:0")
        cls.server.start()

        config = stack.butler_config(
            cls.pki,
            [stack.server_entry("ok", cls.site.ports["ok"]),
             stack.server_entry("bad", cls.site.ports["bad"])],
            influx_port=procs.free_port(), tracker_port=tracker_port,
            health_interval_ms=int(INTERVAL_S * 1000),
            request_timeout_ms=2000)
        config_path = stack.write_config(
            os.path.join(cls.tmp, "butler-sos.yaml"), config)

        cls.faketime_file = os.path.join(cls.tmp, "faketime")
        cls.set_offset(0)
        cls.poller = stack.start_poller_env(config_path, cls.tmp, env={
            "LD_PRELOAD": LIBFAKETIME,
            "FAKETIME_TIMESTAMP_FILE": cls.faketime_file,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # An ASan build wants its runtime first in the library list;
            # libfaketime only wraps time calls, so the order is harmless.
            "ASAN_OPTIONS": ":".join(filter(None, [
                os.environ.get("ASAN_OPTIONS", ""),
                "verify_asan_link_order=0"])),
        })

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "poller", None):
            cls.poller.stop(timeout=20)
        if getattr(cls, "server", None):
            cls.server.stop(grace=None)
        if getattr(cls, "site", None):
            cls.site.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def set_offset(cls, seconds: int) -> None:
        """Steps the poller's wall clock to real time + ``seconds``.
        Replaced atomically: libfaketime never reads a half-written file."""
        staged = cls.faketime_file + ".new"
        with open(staged, "w", encoding="ascii") as f:
            f.write(offset_spec(seconds) + "\n")
        os.replace(staged, cls.faketime_file)

    def request_times(self, endpoint: str) -> list[float]:
        return [r["time"] for r in self.site.requests(endpoint)]

    def log_offsets(self, log_text: str) -> list[float]:
        """Each log line's timestamp minus the real time now (seconds)."""
        now = time.time()
        offsets = []
        for stamp in LOG_TIME.findall(log_text):
            at = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
            at = at.replace(tzinfo=datetime.timezone.utc).timestamp()
            offsets.append(at - now)
        return offsets

    def shifted_failure(self, since: int, offset: int):
        """The first failure received after index ``since`` whose
        occurred_at is real time plus ``offset``, or None."""
        for got_at, failure in self.tracker.received()[since:]:
            occurred = (failure.occurred_at.seconds
                        + failure.occurred_at.nanos / 1e9)
            if abs(occurred - got_at - offset) < CLOCK_SLACK_S:
                return failure
        return None

    def test_cadence_survives_wall_clock_steps(self):
        # The first polls are in: the schedule is running.
        procs.wait_until(lambda: len(self.request_times("ok")) >= 2, 15,
                         message="the first polls")
        for name, offset in PHASES:
            with self.subTest(phase=name):
                before = {e: len(self.request_times(e)) for e in ("ok", "bad")}
                failures_at = len(self.tracker.received())
                self.set_offset(offset)
                # Wait until the step shows inside the poller. No assertion
                # yet: a scheduler on the wall clock may never poll again,
                # and the count below says so more plainly.
                try:
                    procs.wait_until(
                        lambda: self.shifted_failure(failures_at, offset),
                        STEP_SEEN_TIMEOUT_S, interval=0.05)
                except TimeoutError:
                    pass
                log_at = len(self.poller.log_text())
                counts_at = {e: len(self.request_times(e))
                             for e in ("ok", "bad")}
                time.sleep(WINDOW_S)

                # The cadence: one poll of each target per interval.
                for endpoint in ("ok", "bad"):
                    times = self.request_times(endpoint)
                    n = len(times) - counts_at[endpoint]
                    self.assertLessEqual(
                        abs(n - PER_WINDOW), TOLERANCE,
                        f"{endpoint}: {n} polls in {WINDOW_S} s {name}; "
                        f"expected {PER_WINDOW} (one per {INTERVAL_S} s)")
                    # No catch-up burst or early poll at the step: from the
                    # last poll before it on, polls stay about an interval
                    # apart.
                    span = times[max(0, before[endpoint] - 1):]
                    gaps = [b - a for a, b in zip(span, span[1:])]
                    if gaps:
                        self.assertGreater(min(gaps), INTERVAL_S / 4,
                                           f"{endpoint} {name}: {gaps}")

                # The step really happened inside the poller: occurred_at of
                # the failures it reports moved by the offset...
                self.assertIsNotNone(
                    self.shifted_failure(failures_at, offset),
                    f"no failure stamped real time {offset:+d} s {name}")
                # ...and so did its log timestamps.
                new_log = self.poller.log_text()[log_at:]
                offsets = self.log_offsets(new_log)
                self.assertTrue(offsets, f"no log lines {name}")
                self.assertAlmostEqual(offsets[-1], offset,
                                       delta=CLOCK_SLACK_S,
                                       msg=new_log[-2000:])

        # A clean stop after all the steps (at offset 0, see PHASES):
        # SIGTERM, drain, exit 0.
        self.assertEqual(self.poller.stop(timeout=20), 0,
                         self.poller.log_text()[-3000:])


if __name__ == "__main__":
    unittest.main()
