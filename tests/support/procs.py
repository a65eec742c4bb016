"""Process and timing helpers shared by the integration tests.

* ``free_port()``: a currently free TCP port on 127.0.0.1.
* ``wait_until(predicate, timeout, interval)``: poll until truthy or raise.
* ``Proc``: a child process whose output goes to a log file, stopped with
  SIGTERM then SIGKILL, never left behind.
* ``bin_path(name)``: where the build put a service binary (env QFP_BIN_DIR).

Every wait here is bounded; nothing signals a process it did not start.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Short names of the project's binaries, relative to the build directory.
KNOWN_BINARIES = {
    "qs-poller": "poller-service/qs-poller",
    "qs-error-tracker": "tracker-service/qs-error-tracker",
}


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range",
                  encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing is bound to right now.

    Chosen at random below the kernel's ephemeral range (from 10000), where
    no outgoing connection of any process on the machine (an apt download, a
    client's connect) can take it before the caller binds it; a port the
    kernel hands out (bind to 0) is from that range, and was seen taken in the
    moment between. Another test could still pick the same port: callers that
    start a server on it should be ready to retry.
    """
    low = _ephemeral_low()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if low > 10000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(10000, low)
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# True in the sanitizer build (tests/CMakeLists.txt): resident-memory bounds
# are meaningless there (ASan's quarantine and shadow memory).
SANITIZED = os.environ.get("QFP_SANITIZED") == "1"


def wait_until(predicate, timeout: float, interval: float = 0.05,
               message: str | None = None):
    """Call ``predicate()`` until it returns a truthy value and return it.

    Raises ``TimeoutError`` (with ``message`` when given) after ``timeout``
    seconds.  Exceptions raised by the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for "
                               f"{what}")
        time.sleep(min(interval, remaining))


def bin_path(name: str) -> str:
    """Absolute path of a built binary.

    ``name`` is a short name from ``KNOWN_BINARIES`` (``qs-poller``,
    ``qs-error-tracker``) or a path relative to the build directory.  The
    build directory is ``$QFP_BIN_DIR`` (set by CTest), else ``<repo>/build``.
    Raises ``FileNotFoundError`` when the file is missing.
    """
    default_dir = Path(__file__).resolve().parents[2] / "build"
    build_dir = Path(os.environ.get("QFP_BIN_DIR") or default_dir)
    path = build_dir / KNOWN_BINARIES.get(name, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"binary {name!r} not found at {path} (set QFP_BIN_DIR to the "
            f"CMake build directory)")
    return str(path)


class Proc:
    """A child process with its stdout and stderr in one log file.

    ``Proc(args).start()`` or ``with Proc(args) as p:``; leaving the ``with``
    block stops the process.  The log is ``{log_dir}/{name}.log``; without
    ``log_dir`` a new temporary directory is made and kept, so the log
    outlives a failed test.  The child gets its own session so a terminal's
    Ctrl-C reaches the test runner only, which then stops it in order.
    """

    def __init__(self, args, *, name: str | None = None,
                 log_dir: str | None = None, env: dict | None = None,
                 cwd: str | None = None):
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.log_dir = log_dir or tempfile.mkdtemp(prefix=f"{self.name}-")
        self.log_path = os.path.join(self.log_dir, f"{self.name}.log")
        self.env = env
        self.cwd = cwd
        self._popen: subprocess.Popen | None = None

    def start(self) -> "Proc":
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        os.makedirs(self.log_dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        """Exit status (negative signal number), None while running."""
        return self._popen.poll() if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for exit; raises ``TimeoutError``."""
        try:
            return self._require().wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{self.name} (pid {self.pid}) still running after "
                f"{timeout} s") from None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process if it still runs."""
        if self.running:
            self._popen.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the status."""
        if self._popen is None:
            return None
        if self.running:
            self._popen.send_signal(signal.SIGTERM)
            try:
                return self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill9()

    def kill9(self) -> int | None:
        """SIGKILL at once (a crash, as the service sees it) and reap."""
        if self._popen is None:
            return None
        if self.running:
            self._popen.kill()
        return self._popen.wait(timeout=10)

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Wait until ``text`` appears in the log; fails early on exit."""
        def seen():
            if text in self.log_text():
                return True
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited ({self.returncode}) before logging "
                    f"{text!r}; log:\n{self.log_text()[-4000:]}")
            return False
        wait_until(seen, timeout, message=f"{text!r} in {self.log_path}")

    def _require(self) -> subprocess.Popen:
        if self._popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self._popen

    def __enter__(self) -> "Proc":
        return self.start() if self._popen is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Proc({self.name!r}, pid={self.pid}, rc={self.returncode})"


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a running process: its peak resident set, in KiB."""
    return _status_kib(pid, "VmHWM")


def rss_bytes(pid: int) -> int:
    """VmRSS of a running process: its resident set now, in bytes."""
    return _status_kib(pid, "VmRSS") * 1024
