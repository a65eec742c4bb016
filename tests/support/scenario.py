"""A base class for integration tests that start their processes once per
class (one scenario, several assertions on its outcome).

What every such test needs and used to write out: a private temporary
directory, and everything it starts (influxd, the fake Qlik site, the
services) stopped again however setUpClass ends. ``started`` registers a
resource's stop as a class cleanup; unittest runs class cleanups after
tearDownClass, in the reverse order of registration (so pollers stop before
the tracker they deliver to, and the site and influxd last), and also when
setUpClass raises, which tearDownClass alone does not. The directory goes
last, unless QFP_KEEP_TMP is set (to read the logs of a failed run).

Subclasses set TMP_PREFIX and write ``start_scenario`` (a classmethod); the
helpers below start the common parts under the class's directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from typing import Callable, TypeVar

from support import certs
from support.fake_qlik import FakeQlikSite
from support.influxd import InfluxD

T = TypeVar("T")


class ScenarioTestCase(unittest.TestCase):
    TMP_PREFIX = "qfp-"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        cls.addClassCleanup(cls._remove_tmp)
        cls.start_scenario()

    @classmethod
    def start_scenario(cls) -> None:
        raise NotImplementedError(f"{cls.__name__}.start_scenario")

    @classmethod
    def _remove_tmp(cls) -> None:
        if not os.environ.get("QFP_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def started(cls, resource: T, stop: Callable[[], object] | None = None
                ) -> T:
        """Stops ``resource`` (``resource.stop()``, or ``stop``) when the
        class is done; returns it."""
        cls.addClassCleanup(stop if stop is not None else resource.stop)
        return resource

    @classmethod
    def started_process(cls, process, timeout: float = 5.0):
        """A service process (support.procs): SIGTERM at the end, SIGKILL
        after ``timeout`` s."""
        return cls.started(process, lambda: process.stop(timeout=timeout))

    @classmethod
    def make_pki(cls, key_type: str = "ec") -> certs.Pki:
        return certs.make_pki(os.path.join(cls.tmp, "pki"), key_type=key_type)

    @classmethod
    def start_influxd(cls) -> InfluxD:
        return cls.started(InfluxD(os.path.join(cls.tmp, "influxd")).start())

    @classmethod
    def start_site(cls, endpoints: list[dict], pki) -> FakeQlikSite:
        return cls.started(FakeQlikSite({"endpoints": endpoints}, pki).start())
