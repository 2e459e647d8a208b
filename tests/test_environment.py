"""The machine-load helpers the benchmark scripts share (edgevision.benchmarking.environment)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgevision.benchmarking.environment import BUSY_CORES, OtherLoad, load_lines


def test_load_lines_warn_only_when_other_processes_kept_cores_busy() -> None:
    quiet = load_lines([0.0, 0.1])
    assert quiet == ["cores kept busy by other processes in each round (0 = a quiet machine): "
                     "0.00, 0.10"]
    busy = load_lines([0.0, BUSY_CORES, 1.3])
    assert len(busy) == 2
    assert busy[1].startswith(f"WARNING: other processes kept >= {BUSY_CORES} cores busy in 2 "
                              "of 3 rounds")


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads /proc/stat (Linux)")
def test_other_load_sees_another_process_spinning() -> None:
    """A child spinning on one core for 0.6 s while this process sleeps counts as (about) one
    core kept busy by another process; this process's own time is not counted."""
    load = OtherLoad()
    subprocess.run([sys.executable, "-c",
                    "import time\nend = time.perf_counter() + 0.6\n"
                    "while time.perf_counter() < end: pass"], check=True)
    time.sleep(0.05)
    assert load.cores() >= 0.5
