"""The worker's process boot and prometheus_client's multiprocess mode, in a fresh interpreter
(a subprocess: the mode is chosen when prometheus_client is first imported, so it cannot be
checked in the test process; moved from tests/unit/test_metrics.py, issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_worker_process_boot_leaves_prometheus_in_multiprocess_mode(tmp_path: Path) -> None:
    """In a fresh interpreter, the worker's middleware booted in dramatiq's order (after_* hooks
    run in reverse) must leave prometheus_client writing to the shared directory: imported any
    earlier, it stays in single-process mode and the metrics port serves nothing."""
    script = """
import dramatiq, sys
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus
from scenedex.worker.runtime import WorkerRuntime
broker = StubBroker()
broker.add_middleware(Prometheus())
broker.add_middleware(WorkerRuntime(build=lambda: None))  # process boot only: nothing is built
broker.emit_after("process_boot")
import prometheus_client.values as values
print(values.ValueClass.__name__ if hasattr(values.ValueClass, "__name__") else values.ValueClass)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "dramatiq_prom_db": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MmapedValue" in result.stdout, result.stdout
