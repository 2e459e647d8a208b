"""The TensorRT backend. Pure parts (build plan, trtexec command and log parsing, engine
metadata and its compatibility check, the torch-free device path) run everywhere; building and
running engines needs TensorRT and a GPU and skips, saying why, where they are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision.backends.tensorrt.metadata import (
    EngineInput,
    EngineMetadata,
    GpuInfo,
    check_compatible,
    read_metadata,
    write_metadata,
)
from edgevision.backends.tensorrt.plan import (
    BuildPlan,
    EnginePlanError,
    plan_build,
    trtexec_command,
)
from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.backends.tensorrt.versions import (
    TensorRTVersionError,
    release,
    supported_release,
)
from edgevision.errors import ArtifactError, BackendUnavailableError

ORIN = GpuInfo(name="Orin", compute_capability=(8, 7))


def metadata(**changes: object) -> EngineMetadata:
    base = EngineMetadata(
        tensorrt_version="10.3.0", platform="aarch64", gpu=ORIN, precision="fp16",
        build_mode="strongly typed (FP16 graph, TF32 off)", flags=[], tf32=False,
        hardware_compatibility="none", version_compatible=False, dla_core=None,
        input=EngineInput(name="input", dtype="float32", min_shape=[1, 3, 32, 32],
                          opt_shape=[64, 3, 32, 32], max_shape=[64, 3, 32, 32]),
        output_name="logits", preprocess={"image_size": None, "resize": None,
                                          "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                                          "channels": 3},
        labels=["a", "b"], onnx_file="model.fp16.trt.onnx", onnx_sha256="0" * 64,
        source_onnx="model.onnx", source_sha256="1" * 64,
        trtexec_command="trtexec --onnx=model.fp16.trt.onnx", built_with="python")
    return base.model_copy(update=changes)


def plan(precision: str, release: str = "11.4", **spec: object) -> BuildPlan:
    settings: dict[str, object] = {"precisions": [precision], "min_batch": 1, "max_batch": 32,
                                   "workspace_mb": 512, "optimization_level": 4, **spec}
    return plan_build(Path("m.onnx"), Path("m.fp16.engine"), precision,
                      EngineSpec.model_validate(settings), "input", (3, 32, 32),
                      supported_release(release), opt_batch=8, timing_cache=Path("t.cache"))


@pytest.mark.parametrize("release", ["10.3", "10.13", "11.4"])
@pytest.mark.parametrize(("precision", "transform"), [
    ("fp32", "none"), ("tf32", "none"), ("fp16", "fp16"), ("int8", "none"),
    ("int8+fp16", "qdq-fp16")])
def test_engines_are_strongly_typed_on_every_release(release: str, precision: str,
                                                     transform: str) -> None:
    built = plan(precision, release)
    assert built.typing == "strong" and built.transform == transform and built.flags == ()
    assert built.onnx == (Path("m.onnx") if transform == "none" else Path("m.fp16.trt.onnx"))
    assert built.tf32 == (precision == "tf32")
    assert built.profile.min_shape == (1, 3, 32, 32) and built.profile.opt_shape == (8, 3, 32, 32)
    assert built.profile.max_shape == (32, 3, 32, 32)
    assert built.profile.contains(32) and not built.profile.contains(33)
    command = trtexec_command(built)
    assert command[:4] == ["trtexec", f"--onnx={built.onnx}", "--saveEngine=m.fp16.engine",
                           "--skipInference"]
    assert "--minShapes=input:1x3x32x32" in command and "--maxShapes=input:32x3x32x32" in command
    assert "--memPoolSize=workspace:512" in command  # MiB (no suffix: every release)
    assert "--builderOptimizationLevel=4" in command
    assert not {"--fp16", "--int8", "--best"} & set(command)  # weak typing: gone in 11.x
    assert ("--stronglyTyped" in command) == (release != "11.4")  # always on in 11.x
    assert ("--noTF32" in command) == (precision != "tf32")
    assert "strongly typed" in built.mode


def test_deployment_options_map_to_flags_and_trtexec() -> None:
    built = plan("fp16", hardware_compatibility="ampere_plus", version_compatible=True,
                 sparsity=True)
    assert set(built.flags) == {"VERSION_COMPATIBLE", "SPARSE_WEIGHTS"}
    command = trtexec_command(built)
    for expected in ("--hardwareCompatibilityLevel=ampere+", "--versionCompatible",
                     "--sparsity=enable"):
        assert expected in command
    same = trtexec_command(plan("fp16", "10.13", hardware_compatibility="same_compute_capability"))
    assert "--hardwareCompatibilityLevel=sameComputeCapability" in same
    with pytest.raises(EnginePlanError, match="same_compute_capability needs TensorRT 10.13"):
        plan("fp16", "10.3", hardware_compatibility="same_compute_capability")


def test_dla_is_fp16_with_one_static_batch() -> None:
    static = {"dla_core": 0, "min_batch": 4, "max_batch": 4}
    orin = plan("fp16", "10.3", **static)  # JetPack 6: DLA builds are weakly typed
    assert orin.typing == "weak" and orin.transform == "none" and orin.onnx == Path("m.onnx")
    assert orin.flags == ("FP16", "GPU_FALLBACK") and "weakly typed" in orin.mode
    command = trtexec_command(orin)
    assert {"--fp16", "--useDLACore=0", "--allowGPUFallback"} <= set(command)
    assert "--stronglyTyped" not in command
    assert orin.profile.min_shape == orin.profile.opt_shape == orin.profile.max_shape
    later = plan("fp16", "11.4", **static)  # JetPack 7.2.2+: strongly typed, FP16 graph
    assert later.typing == "strong" and later.transform == "fp16" and "--fp16" not in \
        trtexec_command(later)
    with pytest.raises(EnginePlanError, match="DLA engine has one static batch.*1..32"):
        plan("fp16", "10.3", dla_core=0)
    for int8 in ("int8", "int8+fp16"):
        with pytest.raises(EnginePlanError, match=r"INT8 on DLA with TensorRT 10.3\S* needs "
                                                  "implicit quantization"):
            plan(int8, "10.3", **static)
        with pytest.raises(EnginePlanError, match=r"INT8 on DLA with TensorRT 11.4\S* needs Q/DQ "
                                                  "scales on every tensor"):
            plan(int8, "11.4", **static)
    with pytest.raises(EnginePlanError, match="DLA runs FP16 or INT8 layers only"):
        plan("fp32", "10.3", **static)


def test_default_timing_cache_is_one_file_per_release_and_gpu() -> None:
    from edgevision.backends.tensorrt.plan import for_gpu

    default = plan("fp16", "10.3")  # the engine step's default cache: named per GPU
    assert default.timing_cache is None and default.default_timing_cache == Path("t.cache")
    assert not any(a.startswith("--timingCacheFile") for a in trtexec_command(default))
    keyed = for_gpu(default, "NVIDIA Jetson AGX Orin", (8, 7))
    assert keyed.timing_cache == Path("t-nvidia-jetson-agx-orin-sm87.cache")
    assert f"--timingCacheFile={keyed.timing_cache}" in trtexec_command(keyed)
    named = plan("fp16", "10.3", timing_cache="mine.cache")  # the user's file: as given
    assert for_gpu(named, "Orin", (8, 7)).timing_cache == Path("mine.cache")


def test_target_release_is_one_we_know() -> None:
    assert supported_release("10.3.0.26").major_minor == (10, 3)
    with pytest.raises(TensorRTVersionError, match=r"unknown target TensorRT 10.4 \(did you "
                                                   r"mean 10.3\?\): choose 10.3"):
        supported_release("10.4")
    with pytest.raises(ValueError, match="unknown target TensorRT 9.0"):
        EngineSpec(tensorrt_version="9.0")
    with pytest.raises(TensorRTVersionError, match="not a TensorRT version"):
        supported_release("latest")
    assert release("10.8.0.43").weak_typing and not release("11.0.0").weak_typing
    with pytest.raises(TensorRTVersionError, match="TensorRT 8.6.1 is not supported"):
        release("8.6.1")


def test_profile_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="min_batch ≤ opt_batch ≤ max_batch"):
        EngineSpec(min_batch=8, opt_batch=4, max_batch=64)


def test_metadata_round_trip_and_corruption(tmp_path: Path) -> None:
    engine = tmp_path / "model.fp16.engine"
    write_metadata(engine, metadata())
    assert read_metadata(engine) == metadata()
    assert json.loads((tmp_path / "model.fp16.engine.json").read_text())["schema"] == \
        "edgevision.engine/2"
    (tmp_path / "model.fp16.engine.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid edgevision engine metadata"):
        read_metadata(engine)
    with pytest.raises(ArtifactError, match="metadata file other.engine.json is missing"):
        read_metadata(tmp_path / "other.engine")


def test_engine_from_another_platform_tensorrt_or_gpu_is_refused_with_how_to_rebuild(
        ) -> None:
    engine = Path("model.fp16.engine")
    check_compatible(metadata(), "10.3.0.26", ORIN, engine, "aarch64")  # same x.y.z: fine
    with pytest.raises(BackendUnavailableError,
                       match=r"built on aarch64; this machine is x86_64: rebuild it here: "
                             r"edgevision build model.onnx --precision fp16"):
        check_compatible(metadata(), "10.3.0", ORIN, engine, "x86_64")
    with pytest.raises(BackendUnavailableError,
                       match=r"built with TensorRT 10.3.0; this machine has TensorRT 10.13.0: "
                             r"rebuild it here: edgevision build model.onnx --precision fp16"):
        check_compatible(metadata(), "10.13.0", ORIN, engine, "aarch64")
    portable = metadata(version_compatible=True)  # forward compatible, into 11.x as well
    for later in ("10.13.0", "11.4.0.106"):
        check_compatible(portable, later, ORIN, engine, "aarch64")
    with pytest.raises(BackendUnavailableError, match="built with TensorRT 10.13.3 "
                                                      r"\(version-compatible\)"):
        check_compatible(metadata(version_compatible=True, tensorrt_version="10.13.3"),
                         "10.3.0", ORIN, engine, "aarch64")
    h100 = GpuInfo(name="NVIDIA H100", compute_capability=(9, 0))
    with pytest.raises(BackendUnavailableError, match=r"built for Orin \(compute capability "
                                                      r"8.7.*this GPU is NVIDIA H100 \(9.0\)"):
        check_compatible(metadata(), "10.3.0", h100, engine, "aarch64")
    check_compatible(metadata(hardware_compatibility="ampere_plus"), "10.3.0", h100, engine,
                     "aarch64")
    h200 = GpuInfo(name="NVIDIA H200", compute_capability=(9, 0))
    on_h100 = metadata(gpu=h100)
    with pytest.raises(BackendUnavailableError, match="this GPU is NVIDIA H200"):
        check_compatible(on_h100, "10.3.0", h200, engine, "aarch64")
    check_compatible(metadata(gpu=h100, hardware_compatibility="same_compute_capability"),
                     "10.3.0", h200, engine, "aarch64")


def test_int8_engine_needs_the_tensorrt_target_graph(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from edgevision.engines import plan_for
    from edgevision.errors import EdgevisionError
    from edgevision.onnxmeta import write_metadata as write_onnx_metadata

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 32, 32])])
    path = tmp_path / "model.int8.onnx"
    onnx.save(helper.make_model(graph), str(path))
    write_onnx_metadata(path, {"quantization": {"target": "cpu"}})
    with pytest.raises(EdgevisionError, match="this graph's target is cpu"):
        plan_for(path, tmp_path / "m.engine", "int8", EngineSpec())
    write_onnx_metadata(path, {"quantization": {"target": "tensorrt"}})
    built = plan_for(path, tmp_path / "m.engine", "int8", EngineSpec(tensorrt_version="10.3"))
    assert built.onnx == path and built.typing == "strong" and built.flags == ()
    assert built.profile.max_shape == (64, 3, 32, 32)
    with pytest.raises(EdgevisionError, match="the fp16 engine is built from the FP32 graph"):
        plan_for(path, tmp_path / "m.engine", "fp16", EngineSpec())


def test_a_graph_already_in_fp16_is_built_as_it_is(tmp_path: Path) -> None:
    """An FP16 graph (ModelOpt AutoCast's, or ours) builds fp16 as it is; fp32 from it is
    refused rather than silently built in FP16."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgevision.engines import plan_for
    from edgevision.errors import EdgevisionError

    scale = numpy_helper.from_array(np.full((1,), 2.0, dtype=np.float16), "scale")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input"], ["half"], to=TensorProto.FLOAT16),
         helper.make_node("Mul", ["half", "scale"], ["scaled"]),
         helper.make_node("Cast", ["scaled"], ["logits"], to=TensorProto.FLOAT)], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [scale])
    path = tmp_path / "model_fp16.onnx"
    onnx.save(helper.make_model(graph), str(path))
    built = plan_for(path, tmp_path / "m.engine", "fp16", EngineSpec(tensorrt_version="11.4"))
    assert built.transform == "none" and built.onnx == path
    with pytest.raises(EdgevisionError, match="already computes in FP16, so its engine is fp16"):
        plan_for(path, tmp_path / "m.engine", "fp32", EngineSpec(tensorrt_version="11.4"))


BLOCKED = ("torch", "torchvision", "onnxruntime", "onnx", "onnxscript", "torch_pruning",
           "matplotlib")


def test_engine_benchmark_path_is_torch_free(tmp_path: Path) -> None:
    """`edgevision benchmark model.engine --data DIR` with torch, onnx and onnxruntime made
    unimportable: it reaches the TensorRT backend and reports why it cannot run here."""
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / "data" / label / "0.png")
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"not really an engine")
    write_metadata(engine, metadata())
    code = (f"import sys\nfor m in {BLOCKED!r}: sys.modules[m] = None\n"
            "from edgevision.cli import main\n"
            f"sys.argv = ['edgevision', 'benchmark', {str(engine)!r}, '--data', "
            f"{str(tmp_path / 'data')!r}, '--json']\n"
            "main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    output = result.stdout + result.stderr
    assert "halted; None in sys.modules" not in output, output  # nothing blocked was imported
    report = json.loads(result.stdout)
    (row,) = report["rows"]
    assert row["backend"] == "tensorrt" and row["error"]
    available = __import__("edgevision.backends.tensorrt", fromlist=["x"]).TensorRTBackend
    if not available.availability().ok:
        assert "tensorrt" in row["error"].lower()


def test_importing_the_backend_does_not_import_tensorrt() -> None:
    code = ("import sys; import edgevision.backends.tensorrt, edgevision.engines; "
            "print('tensorrt' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "False"


@pytest.mark.slow
def test_recipe_engines_without_tensorrt_are_recorded_not_fatal(tiny_recipe, tmp_path: Path
                                                                 ) -> None:
    from edgevision.backends.tensorrt import TensorRTBackend
    from edgevision.pipeline import compress
    from edgevision.recipe import load_recipe

    if TensorRTBackend.availability().ok:
        pytest.skip("TensorRT is available here: tests/test_tensorrt_gpu.py covers builds")
    recipe = load_recipe(tiny_recipe(engine={"precisions": ["fp16", "int8"]},
                                     benchmark={"backends": ["onnxruntime"],
                                                "batch_sizes": [1], "iterations": 2}))
    result = compress(recipe, out=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    fp16, int8 = manifest["info"]["engines"]
    assert fp16["engine"] is None and "tensorrt" in fp16["error"].lower()
    # strongly typed: the FP16 graph is written for the device and trtexec parses it
    typed = tmp_path / "run" / "model.fp16.trt.onnx"
    assert fp16["trtexec"].startswith(f"trtexec --onnx={typed} ") and typed.is_file()
    assert "--fp16" not in fp16["trtexec"] and fp16["tensorrt"] == "11.4.0.106"
    assert fp16["mode"] == "strongly typed (FP16 graph, TF32 off)"
    assert fp16["graph"]["precision"] == "fp16" and fp16["graph"]["fp16"]["measured"]
    assert int8["engine"] is None and "model.int8.trt.onnx is not in the run" in int8["error"]
    assert result.report is not None and manifest["status"] == "complete"


LOGS = Path(__file__).parent / "data" / "trtexec"


def test_trtexec_summary_parsed_from_real_logs() -> None:
    from edgevision.backends.tensorrt.trtexec import parse_performance_summary

    desktop = parse_performance_summary((LOGS / "trt10.13-summary.log").read_text())
    assert desktop.throughput_qps == 0.562059
    compute = desktop.times["gpu_compute"]
    assert (compute.min, compute.median, compute.percentiles["p99"]) == (1655.52, 1667.19, 1673.94)
    assert desktop.times["d2h"].min == 0.0585938 and set(desktop.times) == {
        "latency", "enqueue", "h2d", "gpu_compute", "d2h"}
    jetson = parse_performance_summary(
        (LOGS / "trt10.3-jetson-nodatatransfers.log").read_text())
    assert jetson.throughput_qps == 318.007 and jetson.times["h2d"].median == 0.0
    assert jetson.times["latency"].percentiles == {"p90": 3.14587, "p95": 3.14771, "p99": 3.15039}


def test_trtexec_benchmark_runs_the_count_with_copies_on_every_release() -> None:
    from edgevision.backends.tensorrt.trtexec import benchmark_command

    for name in ("10.3", "10.13", "11.4"):
        command = benchmark_command(Path("m.engine"), "input", (8, 3, 32, 32), 200,
                                    supported_release(name), version_compatible=True)
        assert {"--iterations=200", "--duration=0", "--shapes=input:8x3x32x32",
                "--versionCompatible"} <= set(command)
        # trtexec 11 leaves host<->device copies out and uses CUDA graphs and spin-wait by
        # default; 10.x and edgevision's own timing do not
        eleven = {"--includeDataTransfers", "--noCudaGraph", "--noSpinWait"}
        assert (eleven <= set(command)) == (name == "11.4")
        assert (eleven & set(command)) == (eleven if name == "11.4" else set())


def test_trtexec_failure_without_summary_is_one_line() -> None:
    from edgevision.backends.tensorrt.trtexec import parse_performance_summary
    from edgevision.errors import EdgevisionError

    with pytest.raises(EdgevisionError, match="no '=== Performance summary ===' section"):
        parse_performance_summary("[E] Error[4]: ... &&&& FAILED TensorRT.trtexec")


def test_engine_from_a_changed_onnx_is_refused(tmp_path: Path) -> None:
    import hashlib

    from edgevision.backends.tensorrt.metadata import check_source_unchanged

    source, typed = tmp_path / "model.onnx", tmp_path / "model.fp16.trt.onnx"
    source.write_bytes(b"graph v1")
    typed.write_bytes(b"fp16 graph v1")
    meta = metadata(source_onnx=str(source), source_sha256=hashlib.sha256(b"graph v1").hexdigest(),
                    onnx_file=str(typed), onnx_sha256=hashlib.sha256(b"fp16 graph v1").hexdigest())
    check_source_unchanged(meta, tmp_path / "model.fp16.engine")
    typed.write_bytes(b"fp16 graph v2")
    with pytest.raises(ArtifactError, match="built from an earlier model.fp16.trt.onnx"):
        check_source_unchanged(meta, tmp_path / "model.fp16.engine")
    typed.unlink()
    source.write_bytes(b"graph v2")
    with pytest.raises(ArtifactError, match="built from an earlier model.onnx"):
        check_source_unchanged(meta, tmp_path / "model.fp16.engine")
    source.unlink()
    check_source_unchanged(meta, tmp_path / "model.fp16.engine")  # engine-only device: fine


def _tiny_graph(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 32, 32])])
    onnx.save(helper.make_model(graph), str(path))
    return path


#: the trtexec source each target release's commands are checked against (11.4's source is
#: not published; 11.1 is the newest 11.x that is)
TRTEXEC_OPTIONS = {"10.3": "options-10.3.txt", "10.13": "options-10.13.3.txt",
                   "11.4": "options-11.1.txt"}


def trtexec_options(release_name: str) -> set[str]:
    text = (LOGS / TRTEXEC_OPTIONS[release_name]).read_text()
    return {line for line in text.splitlines() if line.startswith("--")}


def unknown_options(command: list[str], release_name: str) -> list[str]:
    return [arg for arg in command[1:]
            if arg.split("=", 1)[0] not in trtexec_options(release_name)]


@pytest.mark.parametrize("release_name", list(TRTEXEC_OPTIONS))
def test_every_trtexec_option_exists_in_the_targeted_release(release_name: str) -> None:
    from edgevision.backends.tensorrt.trtexec import benchmark_command

    options = trtexec_options(release_name)
    assert ("--fp16" in options) == (release_name != "11.4")  # the lists are what they say
    settings: list[dict[str, object]] = [
        {}, {"version_compatible": True, "sparsity": True},
        {"hardware_compatibility": "ampere_plus"},
        {"dla_core": 0, "min_batch": 1, "max_batch": 1}]
    if release_name != "10.3":
        settings.append({"hardware_compatibility": "same_compute_capability"})
    for precision in ("fp32", "tf32", "fp16", "int8", "int8+fp16"):
        for extra in settings:
            if "dla_core" in extra and precision != "fp16":
                continue
            command = trtexec_command(plan(precision, release_name, **extra))
            assert unknown_options(command, release_name) == [], (precision, extra)
    timing = benchmark_command(Path("m.engine"), "input", (1, 3, 32, 32), 100,
                               supported_release(release_name), dla_core=0,
                               version_compatible=True)
    assert unknown_options(timing, release_name) == []


def test_build_command_prints_trtexec_and_says_why_it_cannot_build(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgevision.backends.tensorrt import TensorRTBackend
    from edgevision.cli import app

    onnx_path = _tiny_graph(tmp_path / "model.onnx")
    runner = CliRunner()
    for release_name in ("10.3", "11.4"):
        printed = runner.invoke(app, ["build", str(onnx_path), "--max-batch", "16",
                                      "--print-trtexec", "--tensorrt-version", release_name])
        assert printed.exit_code == 0, printed.output
        command = printed.stdout.split()
        typed = tmp_path / "model.fp16.trt.onnx"  # the FP16 graph TensorRT parses, written
        assert command[1] == f"--onnx={typed}" and typed.is_file()
        assert "--maxShapes=input:16x3x32x32" in command and "--fp16" not in command
        assert ("--stronglyTyped" in command) == (release_name == "10.3")
        assert f"--saveEngine={tmp_path / 'model.fp16.engine'}" in command
        assert unknown_options(command, release_name) == []
    unknown = runner.invoke(app, ["build", str(onnx_path), "--print-trtexec",
                                  "--tensorrt-version", "10.4"])
    assert unknown.exit_code == 2 and "unknown target TensorRT 10.4" in unknown.output
    dla = runner.invoke(app, ["build", str(onnx_path), "--print-trtexec", "--dla-core", "0"])
    assert dla.exit_code == 2 and "a DLA engine has one static batch" in dla.output
    if TensorRTBackend.availability().ok:
        return
    result = runner.invoke(app, ["build", str(onnx_path)])
    assert result.exit_code == 2 and "Equivalent build: trtexec --onnx=" in result.output
    assert not (tmp_path / "model.fp16.engine").exists()
    bad = runner.invoke(app, ["build", str(onnx_path), "--min-batch", "128"])
    assert bad.exit_code == 2 and "min_batch ≤ opt_batch ≤ max_batch" in bad.output


def _fake_trtexec(folder: Path, banner: str, header: bool) -> Path:
    """A stand-in ``trtexec`` on PATH (a shell script) that prints ``banner`` and, given
    ``--saveEngine=F``, writes F: it exercises edgevision's plumbing around trtexec; it builds
    nothing and no test reads a figure from it."""
    script = folder / "trtexec"
    lines = ["#!/bin/sh", f"echo '&&&& RUNNING TensorRT.trtexec [TensorRT {banner}] [b1]'"]
    if header:
        lines += ["echo '[I] TensorRT version: 10.3.0'", "echo '[I] Selected Device: Orin'",
                  "echo '[I] Compute Capability: 8.7'"]
    lines += ['for a in "$@"; do case "$a" in --saveEngine=*) echo x > "${a#--saveEngine=}";;',
              "esac; done"]
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    return script


def test_trtexec_release_is_read_from_its_banner(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from edgevision.backends.tensorrt import trtexec
    from edgevision.engines import target_release

    _fake_trtexec(tmp_path, "v100300", header=True)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    trtexec.trtexec_version.cache_clear()
    try:
        assert trtexec.trtexec_version() == "10.3.0"
        spec = EngineSpec(builder="trtexec")
        assert target_release(spec).major_minor == (10, 3)  # the trtexec found, not 11.4
        with pytest.raises(EnginePlanError, match="engines are for TensorRT 11.4.* this "
                                                  "machine has TensorRT 10.3.0"):
            target_release(spec.model_copy(update={"tensorrt_version": "11.4"}))
        printed = target_release(spec.model_copy(update={"tensorrt_version": "11.4"}),
                                 for_this_machine=False)
        assert printed.major_minor == (11, 4)  # a command for the device: not checked here
    finally:
        trtexec.trtexec_version.cache_clear()


def test_a_failed_build_leaves_no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    from edgevision.backends.tensorrt import build, trtexec
    from edgevision.backends.tensorrt.metadata import metadata_path

    _fake_trtexec(tmp_path, "v100300", header=False)  # writes the engine, no device lines
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    trtexec.trtexec_version.cache_clear()
    built = plan("fp32", "10.3")
    engine = tmp_path / "m.fp16.engine"
    built = BuildPlan(**{**built.__dict__, "engine": engine, "onnx": _tiny_graph(
        tmp_path / "m.onnx"), "source": tmp_path / "m.onnx"})
    try:
        with pytest.raises(ArtifactError, match="log lacks the TensorRT version"):
            build.build_with_plan(built, "trtexec")
    finally:
        trtexec.trtexec_version.cache_clear()
    assert not engine.exists() and not metadata_path(engine).exists()

    def fails(_: BuildPlan) -> None:
        raise TypeError("pybind11: incompatible function arguments")

    monkeypatch.setattr(build, "_build_python", fails)
    with pytest.raises(build.EngineBuildError, match=r"TensorRT 10.3.0 could not build "
                                                     r"m.fp16.engine: TypeError: pybind11"):
        build._build_python_safely(built)


def test_timing_cache_is_written_under_a_lock(tmp_path: Path) -> None:
    from edgevision.backends.tensorrt.build import _save_timing_cache
    from edgevision.runlock import RunLock

    class Cache:
        def serialize(self) -> bytes:
            return b"timings"

    class Config:
        def get_timing_cache(self) -> Cache:
            return Cache()

    cache = tmp_path / "tensorrt" / "timing.cache"
    (tmp_path / "tensorrt").mkdir()
    other = RunLock.acquire(cache.with_name("timing.cache.lock"))  # another build writing
    try:
        _save_timing_cache(Config(), cache)  # type: ignore[arg-type]
        assert not cache.exists()
    finally:
        other.release()
    _save_timing_cache(Config(), cache)  # type: ignore[arg-type]
    assert cache.read_bytes() == b"timings"
