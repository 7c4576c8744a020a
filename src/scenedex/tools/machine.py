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

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
