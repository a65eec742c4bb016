#!/usr/bin/python3
"""Resident memory of qs-error-tracker through a flood of idle connections.

A stranger opens --connections TCP connections to a tracker serving mutual
TLS on loopback, sends on each a TLS ClientHello (without a client
certificate: it never finishes a handshake; --silent: sends nothing) and
holds them until the tracker closes them (ConnectionLimits::handshake, 10 s, in
tracker-service/tracker_service.h). Three figures per run, VmRSS from
/proc/PID/status:

  start   the tracker started, one failure reported by a legitimate client
          (mutual TLS), idle 3 s;
  flood   peak RSS, sampled every 100 ms, from the first connection until
          the tracker closed the last one;
  after   5 s after the tracker closed the last one.

Each figure is printed as min / median / max over --runs runs with its ratio
to the same run's start. With --baseline-bin, the same runs are made with
that tracker binary too (e.g. one built before a change), the two sides
alternating which goes first, and the "after" figures are compared. Where
the memory is (/proc/PID/smaps by kind: thread arenas are counted) is
printed for the last run's flood peak and after.

    /usr/bin/python3 tests/bench/tracker_flood_rss.py                   # 4000 connections, 3 runs
    /usr/bin/python3 tests/bench/tracker_flood_rss.py --runs 1 --connections 1000
    /usr/bin/python3 tests/bench/tracker_flood_rss.py --baseline-bin /work/main/build/tracker-service/qs-error-tracker

Binaries come from $QFP_BIN_DIR (default <repo>/build); each tracker binary
is copied into the run's temporary directory first, so a rebuild during the
benchmark does not change what is measured. Extra environment for a
tracker (e.g. MALLOC_ARENA_MAX=2) goes through --env / --baseline-env
NAME=VALUE; --baseline-env alone compares this build with and without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS_DIR))

from support import procs, stack  # noqa: E402
from support.grpc_client import TrackerClient, failure  # noqa: E402
from support.influxd import InfluxD  # noqa: E402
from support.stranger import (TrackerMtls, client_hello,  # noqa: E402
                              flood_until_closed, tracker_mtls)
from bench.figures import ratio_spread, spread  # noqa: E402
from bench.proc_memory import format_breakdown, memory_breakdown, \
    proc_status  # noqa: E402

MIB = 1024 * 1024
START_IDLE_S = 3.0
AFTER_IDLE_S = 5.0
SAMPLE_INTERVAL_S = 0.1
OPEN_TIMEOUT_S = 60.0       # opening all connections
CLOSE_TIMEOUT_S = 120.0     # the tracker closing them (10 s handshake limit)
CONNECT_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    pass


def rss_mib(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024



class Sampler:
    """Peak VmRSS of a process, sampled on a thread until stopped."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self.peak_breakdown: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = rss_mib(self.pid)
            if value > self.peak:
                self.peak = value
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def flood(port: int, count: int, hello: bytes, pid: int,
          sampler: Sampler) -> dict:
    """Opens `count` connections, sends `hello` on each, and waits until the
    tracker has closed them all. Returns times, counts and where the memory
    was with all of them open."""
    at_open = {}

    def when_all_open():
        # The connections are still held unless opening them took longer
        # than the handshake limit.
        at_open["breakdown"] = memory_breakdown(pid)
        at_open["breakdown_rss"] = rss_mib(pid)

    try:
        result = flood_until_closed(port, count, hello,
                                    open_timeout_s=OPEN_TIMEOUT_S,
                                    close_timeout_s=CLOSE_TIMEOUT_S,
                                    connect_timeout_s=CONNECT_TIMEOUT_S,
                                    when_all_open=when_all_open)
    except RuntimeError as error:
        raise BenchError(str(error)) from error
    if result.still_open:
        raise BenchError(f"{result.still_open} connections still open "
                         f"{CLOSE_TIMEOUT_S:.0f} s after the last")
    return {"opened_s": result.opened_s, "all_closed_s": result.all_closed_s,
            "closed": count, "breakdown": at_open["breakdown"],
            "breakdown_rss": at_open["breakdown_rss"],
            "peak_so_far": sampler.peak}


def one_side(name: str, binary: str, args, run_dir: str, pki: TrackerMtls,
             influx: InfluxD, env: dict | None, hello: bytes) -> dict:
    port = procs.free_port()
    config = stack.butler_config(
        stack.NoQlikPki(), [], influx_port=influx.http_port, tracker_port=port,
        tracker_extra=pki.tracker_tls())
    config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
    path = stack.write_config(os.path.join(run_dir, f"{name}.yaml"), config)
    tracker = procs.Proc([binary, "--config", path, "--log_level", "debug"],
                         name=f"tracker-{name}", log_dir=run_dir, env=env)
    tracker.start()
    try:
        tracker.wait_for_log("listening on", timeout=30)
        client = TrackerClient(f"127.0.0.1:{port}", pki.client_credentials)
        try:
            (response,) = client.report([[failure(1, server="good")]],
                                        timeout=20)
            if [a.sequence for a in response.accepted] != [1]:
                raise BenchError(f"{name}: the good failure was not accepted")
        finally:
            client.close()
        time.sleep(START_IDLE_S)
        start = rss_mib(tracker.pid)
        with Sampler(tracker.pid) as sampler:
            flooded = flood(port, args.connections, hello, tracker.pid,
                            sampler)
        time.sleep(AFTER_IDLE_S)
        if not tracker.running:
            raise BenchError(f"{name}: the tracker died; see "
                             f"{tracker.log_path}")
        after = rss_mib(tracker.pid)
        after_breakdown = memory_breakdown(tracker.pid)
        peak = max(sampler.peak, flooded["breakdown_rss"])
        trims = [line for line in tracker.log_text().splitlines()
                 if "heap trim:" in line]
        return {"start": start, "flood": peak, "after": after,
                "flooded": flooded, "after_breakdown": after_breakdown,
                "trims": trims}
    finally:
        tracker.stop(timeout=20)


def report(sides: dict, args) -> None:
    rows = [("start", "start: one failure reported, idle 3 s"),
            ("flood", f"flood: peak with {args.connections} "
                      f"{'silent' if args.silent else 'ClientHello'} "
                      "connections"),
            ("after", f"after: {AFTER_IDLE_S:.0f} s after the tracker "
                      "closed them all")]
    for name, results in sides.items():
        runs = len(results)
        print()
        print(f"{name}: qs-error-tracker VmRSS, MiB: min / median / max of "
              f"{runs} run{'s' if runs != 1 else ''}; ratio to the same "
              "run's start")
        for key, label in rows:
            values = [r[key] for r in results]
            ratios = [r[key] / r["start"] for r in results]
            print(f"  {label:<48} {spread(values)}   {ratio_spread(ratios)}")
        for i, r in enumerate(results, 1):
            f = r["flooded"]
            print(f"  run {i}: opened in {f['opened_s']:.1f} s, all "
                  f"{f['closed']} closed by the tracker {f['all_closed_s']:.1f}"
                  f" s after the first; {len(r['trims'])} heap trims "
                  "logged (>= 1 MiB given back)")
            for line in r["trims"][-3:]:
                print(f"    {line.split('] ', 1)[-1]}")
        last = results[-1]
        print("  " + format_breakdown(
            "last run, all connections open",
            last["flooded"]["breakdown"]).replace("\n", "\n  "))
        print("  " + format_breakdown(
            "last run, after", last["after_breakdown"]).replace("\n", "\n  "))
    if len(sides) == 2:
        (name_a, a), (name_b, b) = sides.items()
        ratios = [x["after"] / y["after"] for x, y in zip(a, b)]
        print()
        print(f"after, {name_a} / {name_b} (same run): {ratio_spread(ratios)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--silent", action="store_true",
                        help="send nothing on the connections (the tracker "
                        "allocates less per connection than for a "
                        "ClientHello)")
    parser.add_argument("--baseline-bin", default="",
                        help="another qs-error-tracker to measure alongside")
    parser.add_argument("--env", action="append", default=[],
                        metavar="NAME=VALUE",
                        help="environment for this build's tracker "
                        "(repeatable)")
    parser.add_argument("--baseline-env", action="append", default=[],
                        metavar="NAME=VALUE",
                        help="environment for the baseline's tracker "
                        "(repeatable); without --baseline-bin the baseline "
                        "is this build with this environment")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, configs)")
    args = parser.parse_args(argv)

    def environment(items):
        if not items:
            return None
        env = dict(os.environ)
        for item in items:
            key, _, value = item.partition("=")
            env[key] = value
        return env
    tmp = tempfile.mkdtemp(prefix="qfp-flood-bench-")
    bin_dir = os.path.join(tmp, "bin")
    os.makedirs(bin_dir)
    binaries = {"this build": os.path.join(bin_dir, "qs-error-tracker")}
    shutil.copy2(procs.bin_path("qs-error-tracker"),
                 binaries["this build"])
    envs = {"this build": environment(args.env)}
    if args.baseline_bin:
        binaries["baseline"] = os.path.join(bin_dir, "qs-error-tracker-base")
        shutil.copy2(args.baseline_bin, binaries["baseline"])
    elif args.baseline_env:
        binaries["baseline"] = binaries["this build"]
    envs["baseline"] = environment(args.baseline_env)
    if args.env or args.baseline_env:
        print(f"environment: this build {args.env}, baseline "
              f"{args.baseline_env}")
    print(f"{args.connections} connections x {args.runs} runs; work dir "
          f"{tmp}", flush=True)
    influx = None
    try:
        pki = tracker_mtls(os.path.join(tmp, "pki"))
        influx = InfluxD(os.path.join(tmp, "influxd")).start()
        hello = b"" if args.silent else client_hello()
        sides: dict[str, list] = {name: [] for name in binaries}
        order = list(binaries)
        for run in range(1, args.runs + 1):
            for name in order:
                run_dir = os.path.join(tmp, f"run{run}")
                os.makedirs(run_dir, exist_ok=True)
                side = name.replace(" ", "-")
                print(f"run {run}: {name}", flush=True)
                sides[name].append(one_side(side, binaries[name], args,
                                            run_dir, pki, influx, envs[name],
                                            hello))
            order.reverse()
        report(sides, args)
        return 0
    finally:
        if influx is not None:
            influx.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
