"""``--check-config`` of both binaries on the config files users write.

Each case is a YAML file written as text (duplicate keys and merge keys
cannot be written from a dict), checked by the real ``qs-poller`` and
``qs-error-tracker`` with ``--check-config``: exit 2 and the exact key path
in the message for a file Butler SOS would refuse or we would misread, exit
0 for a good one. Nothing is started, nothing is created on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unittest

from support import certs, procs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, "tests", "data",
                        "butler-sos-production_template.yaml")
FULL = os.path.join(REPO, "tests", "data", "butler-sos-full.yaml")

POLLER = "qs-poller"
TRACKER = "qs-error-tracker"
BOTH = (POLLER, TRACKER)

# A good file, both services' keys; cases replace parts of it.
GOOD = """\
Butler-SOS:
  logLevel: info
  errorTracking:
    enable: true
    logSummary:
      enable: true
    influxdb:
      enable: true
      measurementName: butler_sos_errors
  cert:
    clientCert: __PKI__/client.pem
    clientCertKey: __PKI__/client_key.pem
    clientCertCA: __PKI__/root.pem
  influxdbConfig:
    enable: true
    host: influx.example.com
    port: 8086
    version: 1
    maxBatchSize: 1000
    v1Config:
      auth:
        enable: false
      dbName: senseops
  appNames:
    enableAppNameExtract: true
    extractInterval: 60000
    hostIP: qrs.example.com
  userSessions:
    enableSessionExtract: true
    pollingInterval: 30000
  serversToMonitor:
    pollingInterval: 30000
    rejectUnauthorized: true
    serverTagsDefinition: []
    servers:
      - host: sense1.example.com:4747
        serverName: sense1
        userSessions:
          enable: true
          host: sense1.example.com:4243
          virtualProxies:
            - virtualProxy: /sales
  failedPolls:
    poller:
      trackerAddress: 127.0.0.1:50051
      spoolDirectory: __TMP__/spool/poller
    tracker:
      listen: 127.0.0.1:50051
      walDirectory: __TMP__/wal/tracker
"""

MERGED_SERVERS = """\
    servers:
      - <<: *sense_defaults
        host: sense1.example.com:4747
        serverName: sense1
      - <<: *sense_defaults
        host: sense2.example.com:4747
        serverName: sense2
        userSessions:
          enable: true
          host: proxy2.example.com:4243
          virtualProxies:
            - virtualProxy: /hr
"""

# Butler SOS allows extra keys inside Butler-SOS: a place for anchors.
SENSE_DEFAULTS = """\
  x-sense-defaults: &sense_defaults
    serverDescription: shared
    userSessions:
      enable: true
      host: proxy.example.com:4243
      virtualProxies:
        - virtualProxy: /sales
"""

GOOD_SERVERS = GOOD[GOOD.index("    servers:\n"):GOOD.index("  failedPolls:")]


def replaced(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


class ConfigCheckTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="qfp-config-check-")
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"))
        cls.pki_dir = os.path.dirname(cls.pki.client_cert)
        cls.count = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write(self, text: str) -> str:
        ConfigCheckTest.count += 1
        path = os.path.join(self.tmp, f"config-{self.count}.yaml")
        text = text.replace("__PKI__", self.pki_dir)
        text = text.replace("__TMP__", self.tmp)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def check(self, binary: str, path: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        for name in ("QFP_CERT_PASSPHRASE", "QFP_INFLUXDB_PASSWORD",
                     "QFP_INFLUXDB_TOKEN"):
            env.pop(name, None)
        return subprocess.run(
            [procs.bin_path(binary), "--config", path, "--check-config"],
            capture_output=True, text=True, timeout=30, env=env,
            cwd=self.tmp)

    def assertRefused(self, binaries, text: str, *expected: str):
        path = self.write(text)
        for binary in binaries:
            with self.subTest(binary=binary):
                result = self.check(binary, path)
                self.assertEqual(result.returncode, 2,
                                 f"stdout:\n{result.stdout}\n"
                                 f"stderr:\n{result.stderr}")
                for line in expected:
                    self.assertIn(line, result.stderr)

    def assertAccepted(self, binaries, text: str):
        path = self.write(text)
        outputs = {}
        for binary in binaries:
            with self.subTest(binary=binary):
                result = self.check(binary, path)
                self.assertEqual(result.returncode, 0, result.stderr)
                outputs[binary] = result.stdout
        return outputs

    # -- good files ---------------------------------------------------------------

    def test_good_file_passes_and_creates_nothing(self):
        outputs = self.assertAccepted(BOTH, GOOD)
        self.assertIn(
            "GET https://sense1.example.com:4243/qps/sales/session?Xrfkey=",
            outputs[POLLER])
        self.assertIn("Config valid: listen 127.0.0.1:50051, points to "
                      "influxdb v1 ", outputs[TRACKER])
        # The heartbeat keys at their defaults.
        self.assertIn("; a poller is silent after 3 missed heartbeats; poll "
                      "attempts points off; coverage off\n", outputs[TRACKER])
        # Neither the poller's spool nor the tracker's queue directory.
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "spool")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "wal")))

    def test_heartbeat_keys_are_shown(self):
        outputs = self.assertAccepted((TRACKER,), replaced(
            "      walDirectory: __TMP__/wal/tracker\n",
            "      walDirectory: __TMP__/wal/tracker\n"
            "      missedHeartbeats: 0\n"
            "      pollAttempts: {enable: true, measurementName: attempts}\n"
            "      coverage: {enable: true}\n"))
        # Coverage of the file's plan: sense1's health API, its /sales
        # sessions and the app names from appNames.hostIP.
        self.assertIn("; silent pollers not watched (missedHeartbeats 0); "
                      "poll attempts points on, measurement attempts; "
                      "coverage on, 3 configured targets\n", outputs[TRACKER])

    def test_poll_attempts_measurement_is_checked(self):
        key = "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName"
        cases = (
            ("butler_sos_errors", f"{key}: must differ from the errors "
             f"measurement \"butler_sos_errors\""),
            ("\"poll attempts\"", f"{key}: may hold only ASCII letters, "
             f"digits, '_', '-' and '.' (found ' ')"),
            ("\"\"", f"{key}: must not be empty"),
        )
        for name, message in cases:
            with self.subTest(name=name):
                self.assertRefused((TRACKER,), replaced(
                    "      walDirectory: __TMP__/wal/tracker\n",
                    "      walDirectory: __TMP__/wal/tracker\n"
                    "      pollAttempts: {enable: true, measurementName: "
                    f"{name}}}\n"), message)

    def test_butler_sos_full_file_passes(self):
        with open(FULL, encoding="utf-8") as f:
            self.assertAccepted(BOTH, f.read())

    # -- duplicate keys (§3b) -----------------------------------------------------

    def test_duplicate_scalar_key_is_refused_by_both(self):
        text = replaced("    pollingInterval: 30000\n    rejectUnauthorized",
                        "    pollingInterval: 30000\n"
                        "    pollingInterval: 5000\n    rejectUnauthorized")
        line = text[:text.index("    pollingInterval: 5000")].count("\n")
        self.assertRefused(
            BOTH, text,
            f"Butler-SOS.serversToMonitor.pollingInterval: key given twice "
            f"in one mapping (lines {line} and {line + 1}); Butler SOS "
            f"refuses a repeated key")

    def test_second_servers_block_is_refused_by_both(self):
        text = replaced("  failedPolls:\n", GOOD_SERVERS + "  failedPolls:\n")
        self.assertRefused(
            BOTH, text,
            "Butler-SOS.serversToMonitor.servers: key given twice in one "
            "mapping")

    # -- merge keys (§3b) ---------------------------------------------------------

    def test_merge_keys_give_each_server_its_polls(self):
        text = replaced("Butler-SOS:\n", "Butler-SOS:\n" + SENSE_DEFAULTS,
                        replaced(GOOD_SERVERS, MERGED_SERVERS))
        outputs = self.assertAccepted(BOTH, text)
        plan = outputs[POLLER]
        # sense1's PROXY_API poll comes only from the merged mapping; sense2
        # overrides userSessions with its own.
        self.assertIn("GET https://proxy.example.com:4243/qps/sales/session",
                      plan)
        self.assertIn("GET https://proxy2.example.com:4243/qps/hr/session",
                      plan)
        self.assertNotIn("proxy.example.com:4243/qps/hr", plan)
        self.assertEqual(plan.count("/qps/"), 2)

    def test_merge_of_a_scalar_is_refused(self):
        text = replaced("        serverName: sense1\n",
                        "        serverName: sense1\n        <<: shared\n")
        self.assertRefused(
            BOTH, text,
            "Butler-SOS.serversToMonitor.servers[0].<<: a merge key takes a "
            "mapping or a list of mappings (<<: *anchor), got \"shared\"")

    # -- hosts (§3, §3b) ----------------------------------------------------------

    def test_influx_host_as_url_is_refused(self):
        for host, why in (("http://influx", "a URL is not a host"),
                          ("influx/", "a path is not a host"),
                          ("influx:8086", "takes no port")):
            with self.subTest(host=host):
                self.assertRefused(
                    (TRACKER,),
                    replaced("host: influx.example.com", f"host: {host}"),
                    f"Butler-SOS.influxdbConfig.host: expected a host name or "
                    f"IP address, got \"{host}\": {why}")

    def test_server_host_as_url_is_refused(self):
        self.assertRefused(
            (POLLER,),
            replaced("- host: sense1.example.com:4747",
                     "- host: https://sense1.example.com:4747"),
            "Butler-SOS.serversToMonitor.servers[0].host: expected a host "
            "name or IP address, optionally with :PORT, got "
            "\"https://sense1.example.com:4747\": a URL is not a host")

    def test_placeholder_host_is_refused(self):
        self.assertRefused(
            (POLLER,),
            replaced("hostIP: qrs.example.com", "hostIP: <IP or FQDN>"),
            "Butler-SOS.appNames.hostIP: expected a host name or IP "
            "address, optionally with :PORT, got \"<IP or FQDN>\": not a "
            "host name or IP address")

    # -- null lists (§3) ----------------------------------------------------------

    def test_null_lists_are_empty_lists(self):
        text = replaced("    serverTagsDefinition: []\n",
                        "    serverTagsDefinition:\n")
        text = replaced(GOOD_SERVERS, "    servers:\n", text)
        outputs = self.assertAccepted(BOTH, text)
        # App names only: the one poll left.
        self.assertIn("Poll plan: 1 targets", outputs[POLLER])
        self.assertIn("GET https://qrs.example.com:4242/qrs/app",
                      outputs[POLLER])

    def test_null_lists_within_a_server(self):
        text = replaced("            - virtualProxy: /sales\n",
                        "        serverTags:\n        headers:\n")
        outputs = self.assertAccepted((POLLER,), text)
        self.assertNotIn("/qps/", outputs[POLLER])

    # -- unknown keys in our own section (§2) -------------------------------------

    def test_typo_in_failed_polls_is_refused_by_both(self):
        text = replaced("      walDirectory:", "      walDirectry:")
        self.assertRefused(
            BOTH, text,
            "Butler-SOS.failedPolls.tracker.walDirectry: unknown key (did "
            "you mean walDirectory?)")

    # -- server and static tag keys InfluxDB cannot take as written ----------------

    def test_server_tag_key_the_tracker_would_refuse_is_refused_by_both(self):
        # Butler SOS writes `host\` as it is; line protocol drops the
        # trailing backslash, so the tracker would refuse every failure of
        # this server (bad_tag_key) and the poller would lose them.
        text = replaced(
            "    serverTagsDefinition: []\n"
            "    servers:\n"
            "      - host: sense1.example.com:4747\n"
            "        serverName: sense1\n",
            "    serverTagsDefinition: [\"host\\\\\"]\n"
            "    servers:\n"
            "      - host: sense1.example.com:4747\n"
            "        serverName: sense1\n"
            "        serverTags: {\"host\\\\\": dc1}\n")
        self.assertRefused(
            BOTH, text,
            "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
            "\"host\\\" ends in a backslash and would be written as the tag "
            "host")

    def test_server_tag_key_one_of_our_tags_is_refused_by_both(self):
        # `error_type` would be left off every point without a word;
        # `poller_id\` would be written as the poll attempts points' own
        # poller_id tag.
        # (the key as YAML double quotes write it, the key)
        for quoted, key in (("error_type", "error_type"),
                            ("poller_id\\\\", "poller_id\\")):
            with self.subTest(key=key):
                text = replaced(
                    "    serverTagsDefinition: []\n"
                    "    servers:\n"
                    "      - host: sense1.example.com:4747\n"
                    "        serverName: sense1\n",
                    f"    serverTagsDefinition: [\"{quoted}\"]\n"
                    "    servers:\n"
                    "      - host: sense1.example.com:4747\n"
                    "        serverName: sense1\n"
                    f"        serverTags: {{\"{quoted}\": dc1}}\n")
                self.assertRefused(
                    BOTH, text,
                    "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                    f"\"{key}\" ")

    def test_server_tag_keys_host_and_server_name_are_accepted_by_both(self):
        # Butler SOS lets a server tag replace its own host and server_name
        # tags (on its health points): a Butler SOS file may hold them.
        text = replaced(
            "    serverTagsDefinition: []\n"
            "    servers:\n"
            "      - host: sense1.example.com:4747\n"
            "        serverName: sense1\n",
            "    serverTagsDefinition: [host, server_name]\n"
            "    servers:\n"
            "      - host: sense1.example.com:4747\n"
            "        serverName: sense1\n"
            "        serverTags: {host: sense1, server_name: Sense 1}\n")
        self.assertAccepted(BOTH, text)

    def test_measurement_name_the_encoder_would_change_is_refused(self):
        for name, why in (("\"butler\\nsos\"", "holds the control character "
                           "0x0a"),
                          ("'butler_sos\\'", "ends in a backslash")):
            with self.subTest(name=name):
                self.assertRefused((TRACKER,), replaced(
                    "      measurementName: butler_sos_errors\n",
                    f"      measurementName: {name}\n"),
                    "Butler-SOS.errorTracking.influxdb.measurementName: "
                    + why)

    def test_static_tag_key_time_is_refused(self):
        # InfluxDB refuses a point with a tag key `time`.
        self.assertRefused((TRACKER,), replaced(
            "      walDirectory: __TMP__/wal/tracker\n",
            "      walDirectory: __TMP__/wal/tracker\n"
            "      tags: {time: x}\n"),
            "Butler-SOS.failedPolls.tracker.tags.time: tag \"time\" is "
            "\"time\", which InfluxDB refuses as a tag key")

    # -- the command line ---------------------------------------------------------

    def test_both_binaries_describe_check_config(self):
        for binary in BOTH:
            with self.subTest(binary=binary):
                result = subprocess.run([procs.bin_path(binary), "--help"],
                                        capture_output=True, text=True,
                                        timeout=30)
                self.assertIn("check_config (Validate the config as a start "
                              "would", result.stdout + result.stderr)

    def test_address_flags_are_checked_as_the_keys_are(self):
        path = self.write(GOOD)
        for binary, flag, value in (
                (POLLER, "--tracker", "http://tracker:50051"),
                (TRACKER, "--listen", "0.0.0.0")):
            with self.subTest(binary=binary):
                result = subprocess.run(
                    [procs.bin_path(binary), "--config", path,
                     "--check-config", f"{flag}={value}"],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(f"{flag}: expected HOST:PORT, got \"{value}\"",
                              result.stderr)

    # -- Butler SOS's own template (§3) -------------------------------------------

    def test_production_template_placeholders_are_refused(self):
        with open(TEMPLATE, encoding="utf-8") as f:
            template = f.read()
        self.assertRefused(
            (POLLER,), template,
            "Butler-SOS.appNames.hostIP: expected a host name or IP "
            "address, optionally with :PORT, got \"<IP or FQDN>\"",
            "Butler-SOS.serversToMonitor.servers[0].host: expected a host "
            "name or IP address, optionally with :PORT, got "
            "\"<server1.my.domain>:4747\"",
            "Butler-SOS.serversToMonitor.servers[1].userSessions.host: "
            "expected a host name or IP address, optionally with :PORT, got "
            "\"<server2.my.domain>:4243\"",
            "Butler-SOS.cert.clientCert: cannot read certificate file "
            "\"<path/to/cert/client.pem>\"")
        # The tracker's keys in the template hold no placeholder.
        self.assertAccepted((TRACKER,), template)

    def test_production_template_filled_in_passes(self):
        with open(TEMPLATE, encoding="utf-8") as f:
            text = f.read()
        for old, new in (
                ("<path/to/cert/client.pem>", "__PKI__/client.pem"),
                ("<path/to/cert/client_key.pem>", "__PKI__/client_key.pem"),
                ("<path/to/cert/root.pem>", "__PKI__/root.pem"),
                ("clientCertPassphrase: <certificate key password, if one "
                 "was specified when exporting certificates from Sense QMC >",
                 "clientCertPassphrase: ''"),
                ("<IP or FQDN>", "qrs.example.com"),
                ("<server1.my.domain>", "sense1.example.com"),
                ("<server2.my.domain>", "sense2.example.com")):
            self.assertIn(old, text)
            text = text.replace(old, new)
        outputs = self.assertAccepted(BOTH, text)
        self.assertIn(
            "GET https://sense2.example.com:4243/qps/finance/session",
            outputs[POLLER])


if __name__ == "__main__":
    unittest.main()
