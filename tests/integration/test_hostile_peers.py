"""Hostile peers against the real qs-error-tracker (issue 11 §5): after each
attack the tracker still serves a well-behaved producer, its memory stays
bounded, and it never crashes."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import struct
import tempfile
import threading
import time
import unittest

import grpc

from support import procs, stack
from support.grpc_client import TrackerClient, failure, pb, pb_grpc
from support.influxd import InfluxD
from support.procs import rss_bytes

# The tracker's limits (tracker-service/tracker_service.h).
MAX_REQUEST_BYTES = 4 << 20
MAX_STREAMS = 256
MAX_STREAMS_PER_PEER = 32
MAX_STREAMS_PER_CONNECTION = 16
# How the tracker words each refusal of a stream.
TRACKER_FULL = "too many open streams; retry later"
PEER_FULL = "too many open streams from this address; retry later"
# What the attacks may add to the tracker's resident memory, at most: gRPC's
# quota (256 MiB) is the hard bound; what we see is far below it.
RSS_GROWTH_LIMIT = 96 << 20



class HostilePeersTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-hostile-")
        cls.influx = InfluxD(os.path.join(cls.tmp, "influxd")).start()
        cls.port = procs.free_port()
        cls.metrics_port = procs.free_port()
        config = stack.butler_config(
            _NoPki(), [], influx_port=cls.influx.http_port,
            tracker_port=cls.port,
            tracker_extra={"metricsListen": f"127.0.0.1:{cls.metrics_port}"})
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        path = stack.write_config(os.path.join(cls.tmp, "c.yaml"), config)
        cls.tracker = stack.start_tracker(path, cls.tmp)
        cls.address = f"127.0.0.1:{cls.port}"
        cls.sequence = 0
        cls.good = TrackerClient(cls.address)
        cls.report_good()  # warm up before the baseline
        cls.baseline_rss = rss_bytes(cls.tracker.pid)

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "good", None):
            cls.good.close()
        if getattr(cls, "tracker", None):
            cls.tracker.stop(timeout=20)
        if getattr(cls, "influx", None):
            cls.influx.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def report_good(cls):
        cls.sequence += 1
        (response,) = cls.good.report(
            [[failure(cls.sequence, server="good", instance="good")]],
            timeout=20)
        return response

    def assert_still_serving(self):
        self.assertIsNone(self.tracker.returncode, "the tracker died")
        response = self.report_good()
        self.assertEqual([a.sequence for a in response.accepted],
                         [self.sequence])
        if procs.SANITIZED:
            return  # RSS under ASan is its quarantine's
        growth = rss_bytes(self.tracker.pid) - self.baseline_rss
        self.assertLess(growth, RSS_GROWTH_LIMIT,
                        f"RSS grew by {growth >> 20} MiB")

    def test_random_bytes_to_the_port(self):
        rng = __import__("random").Random(11)
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=5) as sock:
                try:
                    sock.sendall(bytes(rng.getrandbits(8)
                                       for _ in range(64 * 1024)))
                except OSError:
                    pass  # the tracker closed it: fine
        self.assert_still_serving()

    def test_a_100_mb_message_is_refused(self):
        channel = grpc.insecure_channel(
            self.address,
            options=[("grpc.max_send_message_length", 200 << 20)])
        try:
            stub = pb_grpc.FailedPollTrackerStub(channel)
            big = failure(1, server="big", instance="big")
            big.message = "x" * (100 << 20)
            with self.assertRaises(grpc.RpcError) as caught:
                list(stub.ReportFailures(
                    iter([pb.ReportFailuresRequest(failures=[big])]),
                    timeout=60))
            self.assertEqual(caught.exception.code(),
                             grpc.StatusCode.RESOURCE_EXHAUSTED)
        finally:
            channel.close()
        self.assert_still_serving()

    def streams_refused(self, reason: str) -> float:
        return stack.scrape_metrics(self.metrics_port).get(
            ("qfp_tracker_streams_refused_total", (("reason", reason),)), 0)

    def wait_for_no_streams(self):
        # Streams a test cancelled end on the tracker a moment later; the
        # next test counts on their places.
        procs.wait_until(
            lambda: stack.scrape_metrics(self.metrics_port).get(
                ("qfp_tracker_streams_open", ())) == 0,
            timeout=30, message="streams of an earlier test still open")

    def test_many_streams(self):
        # A producer streaming before the attack keeps being answered while
        # ten peers (each under its own limit) open more streams than the
        # tracker allows in all (over many connections, sending nothing);
        # the ones past the limit end at once with RESOURCE_EXHAUSTED, and
        # once they are gone new streams are served again.
        self.wait_for_no_streams()
        outbox: queue.Queue = queue.Queue()

        def requests():
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        good_channel = grpc.insecure_channel(self.address)
        good = pb_grpc.FailedPollTrackerStub(good_channel).ReportFailures(
            requests(), timeout=120)
        ours = iter([1_000_001, 1_000_002])

        def ask():
            sequence = next(ours)
            outbox.put(pb.ReportFailuresRequest(failures=[
                failure(sequence, server="steady", instance="steady")]))
            return [a.sequence for a in next(good).accepted], sequence

        got, want = ask()
        self.assertEqual(got, [want])

        stop = threading.Event()

        def idle():
            stop.wait(120)
            return
            yield  # a generator that sends nothing

        # 10 peers x 30 streams, each peer over 2 connections: 300 streams,
        # under every peer's limit, over the tracker's.
        peers, per_peer = 10, 30
        proxies = [_SourceProxy(f"127.0.0.{2 + p}", self.port)
                   for p in range(peers)]
        channels = [grpc.insecure_channel(
            proxy.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for proxy in proxies for _ in range(2)]
        calls = []
        before = self.streams_refused("max_streams")
        try:
            for i in range(peers * per_peer):
                stub = pb_grpc.FailedPollTrackerStub(channels[i % len(channels)])
                calls.append(stub.ReportFailures(idle(), timeout=120))

            def refused():
                return [c for c in calls if c.done() and
                        c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
            procs.wait_until(lambda: len(refused()) >= 40, timeout=30)
            self.assertEqual({c.details() for c in refused()}, {TRACKER_FULL})
            # The steady producer's stream still works.
            got, want = ask()
            self.assertEqual(got, [want])
            self.assertGreaterEqual(
                self.streams_refused("max_streams") - before, 40)
        finally:
            stop.set()
            for call in calls:
                call.cancel()
            for channel in channels:
                channel.close()
            for proxy in proxies:
                proxy.close()
            outbox.put(None)
            good_channel.close()
        procs.wait_until(self.try_good, timeout=20)
        self.assert_still_serving()

    def test_streams_per_peer(self):
        # Peer A (127.0.0.1) opens more streams than one peer may, over
        # several connections, sending nothing: the ones past its limit end
        # at once with RESOURCE_EXHAUSTED, counted by reason, while peer B
        # (127.0.0.2, through a proxy that connects from that address)
        # still gets a stream and its failures accepted.
        stop = threading.Event()

        def idle():
            stop.wait(120)
            return
            yield  # a generator that sends nothing

        self.wait_for_no_streams()
        extra = 8
        wanted = MAX_STREAMS_PER_PEER + extra
        connections = -(-wanted // MAX_STREAMS_PER_CONNECTION)
        channels = [grpc.insecure_channel(
            self.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(connections)]
        proxy = _SourceProxy("127.0.0.2", self.port)
        peer_b = TrackerClient(proxy.address)
        calls = []
        before = self.streams_refused("max_streams_per_peer")
        try:
            for i in range(wanted):
                stub = pb_grpc.FailedPollTrackerStub(channels[i % connections])
                calls.append(stub.ReportFailures(idle(), timeout=120))

            def refused():
                return [c for c in calls if c.done() and
                        c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
            procs.wait_until(lambda: len(refused()) >= extra, timeout=30)
            self.assertEqual({c.details() for c in refused()}, {PEER_FULL})
            self.assertEqual(
                self.streams_refused("max_streams_per_peer") - before, extra)
            self.assertEqual(stack.scrape_metrics(self.metrics_port)[
                ("qfp_tracker_streams_open", ())], MAX_STREAMS_PER_PEER)

            # A is at its limit: another stream of A is refused at once...
            with self.assertRaises(grpc.RpcError) as caught:
                self.report_good()
            self.assertEqual(caught.exception.code(),
                             grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(caught.exception.details(), PEER_FULL)
            # ...while B is served.
            self.__class__.sequence += 1
            (response,) = peer_b.report(
                [[failure(self.sequence, server="b", instance="b")]],
                timeout=20)
            self.assertEqual([a.sequence for a in response.accepted],
                             [self.sequence])
            self.assertEqual(self.tracker.log_text().count(
                "the most one peer may (latest from ipv4:127.0.0.1:"), 1)
        finally:
            stop.set()
            for call in calls:
                call.cancel()
            for channel in channels:
                channel.close()
            peer_b.close()
            proxy.close()
        # A's streams gone, A is served again.
        procs.wait_until(self.try_good, timeout=20)
        self.assert_still_serving()

    def try_good(self) -> bool:
        try:
            self.report_good()
            return True
        except grpc.RpcError:
            return False

    def test_a_producer_that_never_reads_its_answers(self):
        # Raw HTTP/2 would be needed to stop reading for real; a Python
        # client that never iterates its responses keeps them unread.
        channel = grpc.insecure_channel(self.address)
        try:
            stub = pb_grpc.FailedPollTrackerStub(channel)
            requests = (pb.ReportFailuresRequest(failures=[
                failure(r * 100 + i + 1, server="deaf", instance="deaf")
                for i in range(100)]) for r in range(2000))
            call = stub.ReportFailures(requests, timeout=60)
            time.sleep(3)  # it sends; the tracker answers into the void
            self.assert_still_serving()
            call.cancel()
        finally:
            channel.close()
        self.assert_still_serving()

    def raw_stream(self, requests, timeout=60):
        """ReportFailures with requests given as raw bytes; returns the raw
        answers, or raises grpc.RpcError."""
        channel = grpc.insecure_channel(self.address)
        try:
            call = channel.stream_stream(
                "/failedpolls.v1.FailedPollTracker/ReportFailures",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b)
            answers = []
            try:
                for answer in call(iter(requests), timeout=timeout):
                    answers.append(answer)
            except grpc.RpcError as error:
                error.answers = answers
                raise
            return answers
        finally:
            channel.close()

    def test_a_request_of_millions_of_empty_items(self):
        # 4 MiB of empty PollFailures (2 bytes each on the wire): refused
        # while parsing, before they are built or answered one by one.
        flood = b"\x0a\x00" * ((4 << 20) // 2 - 64)
        with self.assertRaises(grpc.RpcError) as caught:
            self.raw_stream([flood])
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("at most 10000 failures", caught.exception.details())
        self.assert_still_serving()

    def test_bytes_that_are_not_a_request_end_the_stream_with_the_reason(self):
        self.__class__.sequence += 1
        good = pb.ReportFailuresRequest(failures=[failure(
            self.sequence, server="good", instance="good")]).SerializeToString()
        with self.assertRaises(grpc.RpcError) as caught:
            self.raw_stream([good, b"\xff\xff\xff", good])
        # The request before is answered; the stream then ends saying why.
        self.assertEqual(len(caught.exception.answers), 1)
        answer = pb.ReportFailuresResponse.FromString(
            caught.exception.answers[0])
        self.assertEqual([a.sequence for a in answer.accepted],
                         [self.sequence])
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(caught.exception.details(),
                         "not a ReportFailuresRequest")
        self.assert_still_serving()

    def test_disconnect_in_the_middle_of_a_message(self):
        # A valid HTTP/2 preface and headers, then half a gRPC message, then
        # the connection closes.
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=5) as sock:
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                sock.sendall(_frame(4, 0, 0, b""))  # SETTINGS
                sock.sendall(_frame(1, 0x4, 1, _headers()))  # HEADERS
                # DATA: a gRPC message that claims 1 MiB and brings 10 bytes.
                body = b"\x00" + struct.pack(">I", 1 << 20) + b"\x0a" * 10
                sock.sendall(_frame(0, 0, 1, body))
        self.assert_still_serving()


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) +
            struct.pack(">I", stream) + payload)


def _literal(name: bytes, value: bytes) -> bytes:
    # HPACK literal header field without indexing, new name (RFC 7541 6.2.2);
    # lengths under 127, no Huffman.
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _headers() -> bytes:
    return b"".join([
        _literal(b":method", b"POST"),
        _literal(b":scheme", b"http"),
        _literal(b":path", b"/failedpolls.v1.FailedPollTracker/ReportFailures"),
        _literal(b":authority", b"127.0.0.1"),
        _literal(b"content-type", b"application/grpc"),
        _literal(b"te", b"trailers"),
    ])


class _SourceProxy:
    """A TCP proxy on 127.0.0.1 that connects to the tracker from another
    loopback address (``source``), so that its clients are another peer to
    the tracker: gRPC's Python client cannot choose its source address.
    Threads end when close() shuts every socket down."""

    def __init__(self, source: str, port: int):
        self.source, self.port = source, port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=5,
                    source_address=(self.source, 0))
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    thread = threading.Thread(target=self._pump, args=(a, b),
                                              daemon=True)
                    self.threads.append(thread)
                    thread.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            self.closed = True
            sockets, threads = list(self.sockets), list(self.threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in threads:
            thread.join(timeout=5)


class _NoPki:
    """The tracker reads no certificates; the config only needs paths."""
    client_cert = client_key = root_ca = "/nonexistent"


if __name__ == "__main__":
    unittest.main()
