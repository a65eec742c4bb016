"""A FailedPollTracker client in Python: another program integrating through
the public gRPC API, the way third parties would.

Stubs are generated from proto/ at import time into a temporary directory
with the system protoc and Debian's grpc_python_plugin (python3-grpc-tools
bundles a protoc too old for proto3 `optional`), so they always match the
proto.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_PROTO_ROOT = os.path.join(_REPO, "proto")


def _generate():
    out = tempfile.mkdtemp(prefix="qfp-pb-")
    atexit.register(shutil.rmtree, out, True)
    args = ["protoc", f"-I{_PROTO_ROOT}", "-I/usr/include",
            "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
            f"--python_out={out}", f"--grpc_python_out={out}",
            "failedpolls/v1/failed_polls.proto"]
    result = subprocess.run(args, capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed: {result.stderr}")
    sys.path.insert(0, out)
    return (importlib.import_module("failedpolls.v1.failed_polls_pb2"),
            importlib.import_module("failedpolls.v1.failed_polls_pb2_grpc"))


pb, pb_grpc = _generate()

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def failure(sequence: int, *, server="sense1", source=None, seconds=None,
            category=None, code="ECONNREFUSED", poller="py-client",
            instance="i-1"):
    """A PollFailure as a producer would send it."""
    import time
    msg = pb.PollFailure()
    msg.id.poller_id = poller
    msg.id.instance_id = instance
    msg.id.sequence = sequence
    msg.occurred_at.seconds = seconds or int(time.time())
    msg.occurred_at.nanos = sequence % 1_000_000_000
    msg.source = source if source is not None else pb.HEALTH_API
    msg.server_name = server
    msg.host = f"{server}:4747"
    msg.error_category = (category if category is not None else
                          pb.ERROR_CATEGORY_CONNECTION_REFUSED)
    msg.error_code = code
    msg.request_url = f"https://{server}:4747/engine/healthcheck"
    msg.request_timeout_ms = 5000
    return msg


class TrackerClient:
    def __init__(self, address: str, credentials=None, options=()):
        """Plaintext unless ``credentials`` (grpc.ssl_channel_credentials)
        are given; ``options`` are channel arguments."""
        self.channel = (grpc.secure_channel(address, credentials, options)
                        if credentials is not None else
                        grpc.insecure_channel(address, options))
        self.stub = pb_grpc.FailedPollTrackerStub(self.channel)

    def close(self):
        self.channel.close()

    def report(self, batches, timeout=20):
        """Sends each batch (a list of PollFailure) as one request on one
        stream; returns the responses."""
        requests = (pb.ReportFailuresRequest(failures=batch)
                    for batch in batches)
        return list(self.stub.ReportFailures(requests, timeout=timeout))

    def error_stats(self, timeout=10):
        return self.stub.GetErrorStats(pb.GetErrorStatsRequest(),
                                       timeout=timeout)

    def health(self, timeout=5) -> int:
        """grpc.health.v1 status of the whole server: 1 SERVING, 2
        NOT_SERVING (Debian ships no health stubs for Python; the messages
        are tiny, so they are encoded by hand)."""
        call = self.channel.unary_unary(HEALTH_CHECK,
                                        request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
        answer = call(b"", timeout=timeout)  # HealthCheckRequest{service=""}
        # HealthCheckResponse{status = 1}: tag 0x08, varint.
        return answer[1] if len(answer) >= 2 and answer[0] == 0x08 else 0

    def reflected_services(self, timeout=5) -> bytes:
        """Raw ServerReflectionResponse bytes for list_services."""
        call = self.channel.stream_stream(REFLECTION,
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        # ServerReflectionRequest{list_services = "*"}: field 7, length 1.
        return b"".join(call(iter([b"\x3a\x01*"]), timeout=timeout))
