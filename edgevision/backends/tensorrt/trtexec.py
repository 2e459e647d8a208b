"""trtexec as an alternative builder and benchmark, and the parser of its performance summary."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from edgevision.backends.tensorrt.versions import TensorRTRelease, release
from edgevision.errors import BackendUnavailableError, EdgevisionError
from edgevision.io import atomic_path

#: "[I] GPU Compute Time: min = 0.61 ms, max = 0.79 ms, mean = 0.63 ms, median = 0.62 ms, ..."
_STATS = re.compile(r"(?P<key>min|max|mean|median|percentile\((?P<pct>[\d.]+)%\))\s*=\s*"
                    r"(?P<value>[\d.eE+-]+)\s*ms")
_SECTIONS = {"Latency": "latency", "Enqueue Time": "enqueue", "H2D Latency": "h2d",
             "GPU Compute Time": "gpu_compute", "D2H Latency": "d2h"}


@dataclass(frozen=True)
class TimeStats:
    """One line of trtexec's summary, in ms."""

    min: float
    max: float
    mean: float
    median: float
    percentiles: dict[str, float]


@dataclass(frozen=True)
class TrtexecSummary:
    """trtexec's ``=== Performance summary ===``: throughput (queries per second) and times."""

    throughput_qps: float
    times: dict[str, TimeStats]

    def to_dict(self) -> dict[str, object]:
        return {"throughput_qps": self.throughput_qps,
                "times": {k: asdict(v) for k, v in self.times.items()}}


def parse_performance_summary(log: str) -> TrtexecSummary:
    """Parse the performance summary of a trtexec log (the same format from TensorRT 8.6 to
    11.x: ``printEpilog`` in trtexec's sampleReporting.cpp)."""
    start = log.find("=== Performance summary ===")
    if start < 0:
        raise EdgevisionError("no '=== Performance summary ===' section in the trtexec output "
                              "(did the run fail? see its log)")
    throughput = None
    times: dict[str, TimeStats] = {}
    for line in log[start:].splitlines():
        text = re.sub(r"^\[[^\]]*\]\s*(\[[A-Z]\]\s*)?", "", line.strip())
        if text.startswith("Throughput:"):
            throughput = float(text.split(":", 1)[1].split()[0])
            continue
        label, _, rest = text.partition(":")
        if label in _SECTIONS:
            values = {m["pct"] or m["key"]: float(m["value"]) for m in _STATS.finditer(rest)}
            if {"min", "max", "mean", "median"} <= values.keys():
                times[_SECTIONS[label]] = TimeStats(
                    values.pop("min"), values.pop("max"), values.pop("mean"),
                    values.pop("median"), {f"p{k}": v for k, v in values.items()})
    if throughput is None or "gpu_compute" not in times:
        raise EdgevisionError("the trtexec performance summary lacks Throughput or GPU Compute "
                              "Time lines")
    return TrtexecSummary(throughput, times)


def trtexec_path() -> str:
    """The trtexec executable on PATH (JetPack: /usr/src/tensorrt/bin)."""
    found = shutil.which("trtexec") or (
        "/usr/src/tensorrt/bin/trtexec" if Path("/usr/src/tensorrt/bin/trtexec").is_file()
        else None)
    if found is None:
        raise BackendUnavailableError("trtexec is not on PATH (JetPack: /usr/src/tensorrt/bin; "
                                      "desktop: the TensorRT tar/zip package's bin folder)")
    return found


@functools.cache
def trtexec_version() -> str | None:
    """The TensorRT version of the trtexec on PATH (its ``[TensorRT v100300]`` banner), or None
    without trtexec."""
    try:
        path = trtexec_path()
    except BackendUnavailableError:
        return None
    try:
        result = subprocess.run([path, "--help"], capture_output=True, text=True, check=False,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    banner = re.search(r"\[TensorRT v(\d{2})(\d{2})(\d{2})\]", result.stdout + result.stderr)
    if banner is None:
        raise BackendUnavailableError(f"{path} --help printed no [TensorRT vNNNNNN] banner: is it "
                                      "TensorRT's trtexec?")
    return ".".join(str(int(part)) for part in banner.groups())


def run_trtexec(command: list[str], engine: Path | None = None) -> str:
    """Run trtexec; return its output. With ``engine``, the build writes to a temporary name
    renamed into place only on success."""
    command = [trtexec_path(), *command[1:]]
    if engine is None:
        return _run(command)
    with atomic_path(engine) as tmp:
        command = [f"--saveEngine={tmp}" if arg.startswith("--saveEngine=") else arg
                   for arg in command]
        return _run(command)


def _run(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot run {command[0]}: {exc}") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        lines = output.strip().splitlines()
        errors = [line for line in lines if "[E]" in line][-3:] or lines[-1:]
        raise EdgevisionError(f"trtexec failed (exit {result.returncode}): "
                              f"{' | '.join(errors) or 'no output'}")
    return output


def benchmark_command(engine: Path, input_name: str, shape: tuple[int, ...], iterations: int,
                      release: TensorRTRelease, warmup_ms: int = 200,
                      dla_core: int | None = None, version_compatible: bool = False
                      ) -> list[str]:
    """trtexec timing ``engine`` at ``shape`` exactly ``iterations`` times (``--duration=0``:
    otherwise trtexec runs for at least 3 s whatever the count), measured as edgevision times
    and as trtexec 10.x does by default: host↔device copies included, no CUDA graph, no
    spin-wait. trtexec 11 changed those defaults (copies off, CUDA graphs and spin-wait on), so
    11.x is told ``--includeDataTransfers --noCudaGraph --noSpinWait``."""
    dims = "x".join(str(d) for d in shape)
    command = ["trtexec", f"--loadEngine={engine}", f"--shapes={input_name}:{dims}",
               f"--iterations={iterations}", "--duration=0", f"--warmUp={warmup_ms}"]
    if release.major >= 11:
        command += ["--includeDataTransfers", "--noCudaGraph", "--noSpinWait"]
    if version_compatible:  # the engine's lean runtime is loaded from the plan
        command.append("--versionCompatible")
    if dla_core is not None:
        command.append(f"--useDLACore={dla_core}")
    return command


def trtexec_benchmark(engine: Path, input_name: str, shape: tuple[int, ...],
                      iterations: int, warmup_ms: int = 200, dla_core: int | None = None,
                      version_compatible: bool = False) -> TrtexecSummary:
    """Time ``engine`` with the trtexec on PATH at ``shape`` and parse its performance
    summary."""
    version = trtexec_version()
    if version is None:
        trtexec_path()  # raises: not on PATH
    output = run_trtexec(benchmark_command(engine, input_name, shape, iterations,
                                           release(version or ""), warmup_ms, dla_core,
                                           version_compatible))
    return parse_performance_summary(output)
