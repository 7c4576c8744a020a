"""What machine a figure was measured on: every bench prints it beside its figures (figures from
different machine kinds are not comparable, ``../shared/PERFORMANCE.md``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """``{"cpu_model", "cpus", "torch_threads", "torch", "python"}`` of this machine (the run
    adds ``load_1m``: the 1-minute load average at its start and end; above ~0.5 at the start,
    other processes share the cores and the figures are noisy)."""
    import torch

    model = cpu_model()
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def cpu_model() -> str:
    """lscpu's "Model name", read from ``/proc/cpuinfo`` (``platform.processor()`` or the
    architecture where that file is missing or says nothing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
