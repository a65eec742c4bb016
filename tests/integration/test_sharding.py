"""Three pollers share one config's targets, with no coordinator (§2).

Three real qs-poller processes read the same Butler SOS file and differ only
in ``$QFP_POD_IP`` (127.0.0.11, .12, .13), as the pods of one Kubernetes
workload do. ``cluster.peersDns`` names ``pollers.qfp.test``, whose A records
a real DNS server (dnsmasq, on a loopback address of its own, from a hosts
file re-read on SIGHUP) lists, as a headless Service lists ready pods. Each
poller runs in a mount namespace whose /etc/resolv.conf names that server,
so no query leaves the machine. They poll a fake Qlik Sense site (real TLS)
and report to a real tracker.

Who polled what comes from two independent records: the fake site's request
log (every request, by endpoint and path) and each poller's debug log (the
target key of every poll it starts). Checked:

* steady state: the union of polled targets is every target, each target is
  polled by exactly one poller, never more often than once an interval, and
  its poller is the rendezvous owner computed here by an independent
  implementation of the documented hash;
* a poller killed (SIGKILL) and its record removed: its targets are polled
  again within 2 intervals, and no other target moves;
* the poller restarted and its record back: the targets rebalance to the
  three-member owners;
* a poller whose address is not listed polls every target (the fallback).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from datetime import datetime, timezone

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite

INTERVAL_MS = 4000 if procs.SANITIZED else 2000  # health and sessions
INTERVAL_S = INTERVAL_MS / 1000
REFRESH_MS = 500  # cluster.peersRefreshInterval
SERVERS = 8  # x (health check + 2 virtual proxies) = 24 targets
VIRTUAL_PROXIES = ("/", "/sales")
PEERS_DNS = "pollers.qfp.test"
ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")

# --- the documented weight (poller-service/rendezvous_ownership.h) ---------
_M64 = (1 << 64) - 1


def _fnv1a(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & _M64
    return h


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def weight(member: str, key: str) -> int:
    h = _fnv1a(0xCBF29CE484222325, member.encode())
    h = _fnv1a(h, b"\xff")
    return _fmix64(_fnv1a(h, key.encode()))


def owner(members, key: str) -> str:
    return max(sorted(members), key=lambda m: weight(m, key))


# --- who polled what -------------------------------------------------------
_GET = re.compile(r"^(\S+) debug +\[[^\]]*\] (.+?): GET https://")


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def poll_starts(log_text: str) -> list[tuple[float, str]]:
    """(time, target key) of every poll a debug-level poller log started."""
    starts = []
    for line in log_text.splitlines():
        match = _GET.match(line)
        if match:
            starts.append((_log_time(match.group(1)), match.group(2)))
    return starts


def site_key(request: dict) -> str:
    """The target key of a request the fake site recorded."""
    server = request["endpoint"]
    path = request["path"]
    if path == "/engine/healthcheck":
        return f"HEALTH_API {server}"
    if path == "/qps/session":
        return f"PROXY_API {server} /"
    match = re.fullmatch(r"/qps/(.+)/session", path)
    if match:
        return f"PROXY_API {server} /{match.group(1)}"
    raise AssertionError(f"unexpected request {request}")


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    if shutil.which("dnsmasq") is None:
        return "dnsmasq (Debian's dnsmasq-base) is not installed"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True,
                           timeout=10)
    if probe.returncode != 0:
        return ("cannot create a mount namespace here: "
                f"{probe.stderr.decode().strip()}")
    return None


class LoopbackDns:
    """dnsmasq answering for PEERS_DNS from a hosts file, on a loopback
    address of its own (port 53, which resolv.conf cannot change), so that
    nothing else on 127.0.0.1:53 is disturbed."""

    def __init__(self, tmp: str):
        self.address = f"127.53.{os.getpid() % 250 + 1}.{int(time.time()) % 250 + 1}"
        self.hosts = os.path.join(tmp, "peers.hosts")
        self.resolv = os.path.join(tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {self.address}\n"
                    "options timeout:1 attempts:1\n")
        self.set_members([])
        self.proc = procs.Proc(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}",
             "--local=/qfp.test/", f"--listen-address={self.address}",
             "--bind-interfaces", "--port=53", "--pid-file", "--user=root",
             "--log-facility=-", "--local-ttl=0"],
            name="dnsmasq", log_dir=tmp)

    def start(self):
        self.proc.start()
        self.proc.wait_for_log("read " + self.hosts, timeout=10)
        return self

    def set_members(self, addresses, reload: bool = False):
        with open(self.hosts, "w") as f:
            for address in addresses:
                f.write(f"{address} {PEERS_DNS}\n")
        if reload:
            reads = self.proc.log_text().count("read " + self.hosts)
            self.proc.signal(signal.SIGHUP)
            procs.wait_until(
                lambda: self.proc.log_text().count("read " + self.hosts)
                > reads, timeout=10, message="dnsmasq re-read its hosts")

    def wrapper(self):
        return ["unshare", "-m", "sh", "-c",
                f"mount --bind {self.resolv} /etc/resolv.conf && "
                'exec "$@"', "sh"]

    def stop(self):
        self.proc.stop(timeout=5)


class ShardingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        problem = _namespace_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-shard-")
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"), key_type="ec")
        names = [f"s{i}" for i in range(SERVERS)]
        cls.site = FakeQlikSite({"endpoints": [
            {"name": name, "behaviour": "healthy"} for name in names]},
            cls.pki).start()
        cls.keys = sorted(
            [f"HEALTH_API {n}" for n in names]
            + [f"PROXY_API {n} {vp}" for n in names for vp in VIRTUAL_PROXIES])
        tracker_port = procs.free_port()
        cls.config = stack.butler_config(
            cls.pki,
            [stack.server_entry(n, cls.site.ports[n],
                                sessions_port=cls.site.ports[n],
                                virtual_proxies=list(VIRTUAL_PROXIES))
             for n in names],
            influx_port=procs.free_port(), tracker_port=tracker_port,
            health_interval_ms=INTERVAL_MS, sessions_interval_ms=INTERVAL_MS,
            influx_points=False,
            poller_extra={"cluster": {"peersDns": PEERS_DNS,
                                      "peersRefreshInterval": REFRESH_MS}})
        # One file for every poller: pollerId comes from $QFP_POLLER_ID.
        del cls.config["Butler-SOS"]["failedPolls"]["poller"]["pollerId"]
        cls.config_path = stack.write_config(
            os.path.join(cls.tmp, "butler-sos.yaml"), cls.config)
        cls.dns = LoopbackDns(cls.tmp).start()
        cls.tracker = stack.start_tracker(cls.config_path, cls.tmp)

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "tracker", None):
            cls.tracker.stop(timeout=10)
        if getattr(cls, "dns", None):
            cls.dns.stop()
        if getattr(cls, "site", None):
            cls.site.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start_poller(self, address: str, run: str) -> procs.Proc:
        env = dict(os.environ, QFP_POD_IP=address,
                   QFP_POLLER_ID=f"poller-{address.rsplit('.', 1)[1]}")
        proc = procs.Proc(
            [*self.dns.wrapper(), procs.bin_path("qs-poller"), "--config",
             self.config_path, "--log_level", "debug"],
            name=f"poller-{address}-{run}", log_dir=self.tmp, env=env)
        proc.start()
        self.addCleanup(proc.stop, 20)
        proc.wait_for_log("qs-poller started", timeout=20)
        return proc

    def site_counts(self, start: float, end: float) -> dict:
        counts = {key: 0 for key in self.keys}
        for request in self.site.requests():
            if start <= request["time"] < end:
                counts[site_key(request)] += 1
        return counts

    def assert_partition(self, pollers: dict, start: float, end: float):
        """Over [start, end): every target polled, each by one poller only,
        its rendezvous owner among `pollers` ({address: Proc}), at most once
        an interval (the site's count)."""
        polled_by = {key: set() for key in self.keys}
        for address, proc in pollers.items():
            for when, key in poll_starts(proc.log_text()):
                if start <= when < end:
                    polled_by[key].add(address)
        for key in self.keys:
            with self.subTest(key=key):
                self.assertEqual(polled_by[key], {owner(pollers, key)})
        # A target polled by two pollers would be requested about twice as
        # often; one poller gives at most one request per interval (+1 at
        # the window's edges).
        rounds = (end - start) / INTERVAL_S
        for key, count in self.site_counts(start, end).items():
            with self.subTest(key=key):
                self.assertGreaterEqual(count, int(rounds) - 1)
                self.assertLessEqual(count, int(rounds) + 1)

    def test_pollers_share_fail_over_and_rebalance(self):
        self.dns.set_members(ADDRESSES, reload=True)
        pollers = {a: self.start_poller(a, "first") for a in ADDRESSES}
        for proc in pollers.values():
            proc.wait_for_log("3 pollers", timeout=10)

        # Steady state over 4 intervals.
        start = time.time() + 0.5
        time.sleep(0.5 + 4 * INTERVAL_S)
        self.assert_partition(pollers, start, time.time())
        shares = {a: [k for k in self.keys if owner(ADDRESSES, k) == a]
                  for a in ADDRESSES}
        for address, share in shares.items():
            self.assertTrue(share, f"{address} owns no target of 24")

        # One poller dies; its record goes, as a pod leaves its Service.
        dead = ADDRESSES[1]
        pollers[dead].kill9()
        killed_at = time.time()
        self.dns.set_members([a for a in ADDRESSES if a != dead], reload=True)
        survivors = {a: p for a, p in pollers.items() if a != dead}
        deadline = killed_at + 2 * INTERVAL_S
        procs.wait_until(
            lambda: all(n > 0 for k, n in self.site_counts(
                killed_at, time.time()).items() if k in shares[dead]),
            timeout=2 * INTERVAL_S + 5,
            message="the dead poller's targets polled again")
        late = {k: n for k, n in self.site_counts(killed_at, deadline).items()
                if k in shares[dead] and n == 0}
        self.assertEqual(late, {}, "not polled within 2 intervals of the "
                         "kill")
        # Only its targets moved: the survivors keep theirs.
        for key in self.keys:
            if key not in shares[dead]:
                self.assertEqual(owner(survivors, key), owner(ADDRESSES, key))
        time.sleep(max(0.0, deadline - time.time()))
        start = time.time()
        time.sleep(4 * INTERVAL_S)
        self.assert_partition(survivors, start, time.time())

        # It comes back (same address, a new process): the targets
        # rebalance to the three-member owners.
        self.dns.set_members(ADDRESSES, reload=True)
        pollers[dead] = self.start_poller(dead, "second")
        for proc in survivors.values():
            procs.wait_until(
                lambda proc=proc: proc.log_text().count(
                    "3 pollers (1 joined, 0 left)") >= 1,
                timeout=10, message="a survivor saw the poller return")
        start = time.time() + REFRESH_MS / 1000
        time.sleep(REFRESH_MS / 1000 + 4 * INTERVAL_S)
        self.assert_partition(pollers, start, time.time())

        # The logged counts agree: 24 targets owned in all, by the
        # pollers' last membership lines.
        owned = 0
        for address, proc in pollers.items():
            lines = [l for l in proc.log_text().splitlines()
                     if f"cluster {PEERS_DNS}: 3 pollers" in l]
            self.assertTrue(lines, address)
            owned += int(re.search(r"polls (\d+) of 24 targets",
                                   lines[-1]).group(1))
        self.assertEqual(owned, len(self.keys))
        for proc in pollers.values():
            self.assertEqual(proc.stop(timeout=20), 0)

    def test_unlisted_poller_polls_everything(self):
        # Its own address is not among the records (a pod not yet ready):
        # it polls every target rather than none, and says so.
        self.dns.set_members(["127.0.0.21"], reload=True)
        poller = self.start_poller("127.0.0.22", "unlisted")
        start = time.time()
        time.sleep(2 * INTERVAL_S)
        polled = {key for when, key in poll_starts(poller.log_text())
                  if when >= start}
        self.assertEqual(polled, set(self.keys))
        self.assertIn(f"cluster: {PEERS_DNS} lists 1 address, "
                      "not this poller's (cluster.self 127.0.0.22); polling "
                      "every target (24 of 24) rather than none",
                      poller.log_text())
        self.assertEqual(poller.stop(timeout=20), 0)


if __name__ == "__main__":
    unittest.main()
