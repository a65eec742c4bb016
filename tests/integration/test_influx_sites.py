"""The tracker on InfluxDB 1.x sites as they are (issue 9 §1, §6): a real
influxd 1.6.7 with `auth-enabled`, an administrator and a write-only user,
databases that exist with and without the configured retention policy, and
a `max-body-size` small enough to refuse one point.

Butler SOS creates the retention policy, as the database's default, only
when it creates the database, and writes without `rp=`, into the default
policy. The tracker must do the same and never alter a shared database."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
import time
import unittest

from support import procs, stack
from support.grpc_client import TrackerClient, failure
from support.influxd import InfluxD, quote_identifier

ADMIN = ("admin", "admin-secret")
WRITER = ("writer", "writer-secret")
DB = stack.DB
MEASUREMENT = stack.MEASUREMENT


class SiteInfluxD(InfluxD):
    """influxd with `auth-enabled = true` (and optionally a small
    `max-body-size`); the helper's own queries authenticate as ADMIN."""

    def __init__(self, directory, *, max_body_size: int | None = None):
        super().__init__(directory)
        self.max_body_size = max_body_size
        self.credentials = None

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        text = text.replace("auth-enabled = false", "auth-enabled = true")
        if self.max_body_size is not None:
            text = text.replace(
                "[http]\n",
                f"[http]\n  max-body-size = {self.max_body_size}\n", 1)
        self.config_path.write_text(text)

    def _request(self, path, params, data=None):
        if self.credentials:
            params = dict(params, u=self.credentials[0],
                          p=self.credentials[1])
        return super()._request(path, params, data)

    def start(self, timeout: float = 20.0) -> "SiteInfluxD":
        super().start(timeout)
        # With auth on, 1.x lets the first admin user be made without
        # credentials; everything after that needs them.
        self.query(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' "
                   "WITH ALL PRIVILEGES")
        self.credentials = ADMIN
        self.query(f"CREATE USER {WRITER[0]} WITH PASSWORD '{WRITER[1]}'")
        return self

    def policies(self, db: str) -> dict:
        """{name: (duration, default)} from SHOW RETENTION POLICIES."""
        answer = self.query(f"SHOW RETENTION POLICIES ON {quote_identifier(db)}")
        rows = {}
        for result in answer.get("results", []):
            for series in result.get("series", []):
                cols = series["columns"]
                for row in series.get("values", []):
                    item = dict(zip(cols, row))
                    rows[item["name"]] = (item["duration"], item["default"])
        return rows

    def databases(self) -> list[str]:
        answer = self.query("SHOW DATABASES")
        return [row[0] for result in answer.get("results", [])
                for series in result.get("series", [])
                for row in series.get("values", [])]

    def count_in(self, db: str, policy: str) -> int:
        answer = self.query(
            f"SELECT count(error_count) FROM {quote_identifier(policy)}."
            f"{quote_identifier(MEASUREMENT)}", db=db)
        for result in answer.get("results", []):
            for series in result.get("series", []):
                return int(series["values"][0][1])
        return 0


class _NoPki:
    """The tracker reads no certificates; the config only needs paths."""
    client_cert = client_key = root_ca = "/nonexistent"


class InfluxSitesTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qfp-sites-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.tracker = None
        self.client = None
        self.addCleanup(self._stop)

    def _stop(self):
        if self.client is not None:
            self.client.close()
        if self.tracker is not None and self.tracker.running:
            self.tracker.stop(timeout=20)

    def start_influx(self, **kwargs) -> SiteInfluxD:
        influx = SiteInfluxD(os.path.join(self.tmp, "influxd"), **kwargs)
        influx.start()
        self.addCleanup(influx.stop)
        return influx

    def config(self, influx, user, *, policy=("10d", "10d"), extra=None):
        port = procs.free_port()
        config = stack.butler_config(_NoPki(), [],
                                     influx_port=influx.http_port,
                                     tracker_port=port)
        v1 = config["Butler-SOS"]["influxdbConfig"]["v1Config"]
        v1["auth"] = {"enable": True, "username": user[0],
                      "password": user[1]}
        v1["retentionPolicy"] = {"name": policy[0], "duration": policy[1]}
        config["Butler-SOS"]["influxdbConfig"].update(extra or {})
        path = stack.write_config(os.path.join(self.tmp, "c.yaml"), config)
        return path, port

    def start_tracker(self, path, port):
        self.tracker = stack.start_tracker(path, self.tmp)
        self.client = TrackerClient(f"127.0.0.1:{port}")

    def send(self, count, *, server="site", start=1):
        batch = [failure(i, server=server, instance=server)
                 for i in range(start, start + count)]
        (response,) = self.client.report([batch])
        self.assertEqual(len(response.accepted), count)

    def stop_tracker(self) -> str:
        self.assertEqual(self.tracker.stop(timeout=20), 0)
        return self.tracker.log_text()

    # -- §1 (a): an existing database with only autogen is not altered ----

    def test_existing_database_is_not_altered_and_points_go_to_its_default(
            self):
        influx = self.start_influx()
        influx.create_database(DB)
        before = influx.policies(DB)
        self.assertEqual(before, {"autogen": ("0s", True)})
        # The administrator's account: one that *could* change it.
        self.start_tracker(*self.config(influx, ADMIN))
        self.send(5)
        procs.wait_until(lambda: influx.count_in(DB, "autogen") == 5,
                         timeout=20)
        self.assertEqual(influx.policies(DB), before)
        log = self.stop_tracker()
        self.assertNotIn("CREATE RETENTION POLICY", log)
        where = re.findall(r" info .*database senseops exists and is left "
                           r"as it is; points go to its default retention "
                           r"policy autogen", log)
        self.assertEqual(len(where), 1, log)

    def test_existing_database_with_the_policy_not_default_keeps_its_default(
            self):
        influx = self.start_influx()
        influx.create_database(DB)
        influx.query(f'CREATE RETENTION POLICY "10d" ON {DB} DURATION 10d '
                     "REPLICATION 1")
        self.start_tracker(*self.config(influx, ADMIN))
        self.send(3)
        # Like Butler SOS: into the default policy, not the named one.
        procs.wait_until(lambda: influx.count_in(DB, "autogen") == 3,
                         timeout=20)
        self.assertEqual(influx.count_in(DB, "10d"), 0)
        self.assertEqual(influx.policies(DB),
                         {"autogen": ("0s", True), "10d": ("240h0m0s", False)})

    def test_existing_database_whose_default_is_the_policy_gets_the_points(
            self):
        influx = self.start_influx()
        influx.create_database(DB)
        influx.query(f'CREATE RETENTION POLICY "10d" ON {DB} DURATION 10d '
                     "REPLICATION 1 DEFAULT")
        self.start_tracker(*self.config(influx, ADMIN))
        self.send(4)
        procs.wait_until(lambda: influx.count_in(DB, "10d") == 4, timeout=20)
        self.assertEqual(influx.count_in(DB, "autogen"), 0)

    def test_missing_database_is_created_with_the_policy_as_default(self):
        influx = self.start_influx()
        self.start_tracker(*self.config(influx, ADMIN,
                                        policy=("butler", "30days")))
        procs.wait_until(lambda: DB in influx.databases(), timeout=20)
        self.assertEqual(influx.policies(DB)["butler"], ("720h0m0s", True))
        self.send(2)
        procs.wait_until(lambda: influx.count_in(DB, "butler") == 2,
                         timeout=20)
        log = self.stop_tracker()
        self.assertEqual(log.count("created database senseops with the "
                                   "default retention policy butler (30d)"),
                         1, log)

    # -- §1 (b): a write-only user writes ---------------------------------

    def test_write_only_user_writes(self):
        influx = self.start_influx()
        influx.create_database(DB)
        influx.query(f"GRANT WRITE ON {DB} TO {WRITER[0]}")
        self.start_tracker(*self.config(influx, WRITER))
        self.send(6)
        procs.wait_until(lambda: influx.count_in(DB, "autogen") == 6,
                         timeout=20)
        self.assertEqual(influx.policies(DB), {"autogen": ("0s", True)})
        log = self.stop_tracker()
        self.assertNotIn("retention policy not found", log)
        # 1.6.7 lists the database to this user but refuses it SHOW
        # RETENTION POLICIES (READ): where points go is said once, in
        # general terms, not on every write.
        self.assertEqual(log.count(
            "database senseops exists and is left as it is; points go to its "
            "default retention policy (retentionPolicy 10d applies only to a "
            "database the tracker creates)"), 1, log)
        self.assertIn("every point written: 6 failures accepted; 6 points "
                      "written", log)

    # -- §1 (c): a duration InfluxDB would refuse stops the start ---------

    def test_duration_below_one_hour_is_refused_at_load(self):
        influx = self.start_influx()
        path, _ = self.config(influx, ADMIN, policy=("10d", "30m"))
        proc = stack.start_tracker_only(path, self.tmp, name="short")
        self.assertEqual(proc.wait(timeout=20), 2)
        self.assertIn("Butler-SOS.influxdbConfig.v1Config.retentionPolicy."
                      "duration: \"30m\" is shorter than one hour",
                      proc.log_text())
        self.assertNotIn(DB, influx.databases())

    def test_setting_no_retry_can_fix_stops_the_start(self):
        # Issue 9 §2: found while setting the destination up at start (a line
        # break InfluxQL cannot quote): exit 2 with the key path, not a
        # tracker that retries its setup forever.
        influx = self.start_influx()
        path, _ = self.config(influx, ADMIN)
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        config["Butler-SOS"]["influxdbConfig"]["v1Config"]["dbName"] = \
            "sense\nops"
        stack.write_config(path, config)
        proc = stack.start_tracker_only(path, self.tmp, name="badname")
        self.assertEqual(proc.wait(timeout=30), 2)
        self.assertIn("influxdbConfig.v1Config.dbName: ", proc.log_text())
        self.assertIn("contains a line break", proc.log_text())
        self.assertEqual(influx.databases(), [])

    def test_duration_words_are_accepted(self):
        influx = self.start_influx()
        self.start_tracker(*self.config(influx, ADMIN, policy=("y", "1y")))
        procs.wait_until(lambda: DB in influx.databases(), timeout=20)
        self.assertEqual(influx.policies(DB)["y"], ("8760h0m0s", True))

    # -- §6: the shutdown summary after a point InfluxDB refused ---------

    def test_summary_counts_a_point_too_large_for_max_body_size(self):
        influx = self.start_influx(max_body_size=4096)
        influx.create_database(DB)
        self.start_tracker(*self.config(influx, ADMIN))
        big = failure(100, server="site", instance="site")
        # Random bytes: gzip cannot shrink them under the limit (about 5 KB
        # compressed), and the URL stays under the tracker's own 8192-byte
        # limit for request_url.
        big.request_url = ("https://site:4747/" +
                           base64.urlsafe_b64encode(os.urandom(5000)).decode())
        batch = [failure(i, server="site", instance="site")
                 for i in range(1, 8)] + [big]
        (response,) = self.client.report([batch])
        self.assertEqual(len(response.accepted), 8)
        procs.wait_until(lambda: influx.count_in(DB, "autogen") == 7,
                         timeout=30)
        procs.wait_until(lambda: "rejected a point (HTTP 413"
                         in self.tracker.log_text(), timeout=30)
        time.sleep(0.5)  # one flush interval: nothing else is pending
        log = self.stop_tracker()
        self.assertNotIn("every point written", log)
        self.assertIn("8 failures accepted; 7 points written to influxdb v1 "
                      f"http://127.0.0.1:{influx.http_port} db=senseops; 1 "
                      "dropped (0 refused by InfluxDB as bad points, 1 too "
                      "large for InfluxDB's max-body-size alone); 0 left", log)


if __name__ == "__main__":
    unittest.main()
