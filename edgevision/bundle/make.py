"""``edgevision bundle``: a run's chosen model as a self-contained folder a device runs — the
model file for the target, ``model.json`` (+ its JSON Schema), ``labels.txt``, a torch-free
Python runner, the C++ runner's CMake project and a README — and the same as ``.tar.gz``.

The folder is assembled in a temporary folder beside ``--out`` and renamed into place, so a
failure leaves nothing half-written."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

import PIL

from edgevision import __version__
from edgevision.bundle.measured import measured, runtime_version
from edgevision.bundle.schema import (
    BUNDLE_SCHEMA,
    Batch,
    BundleMetadata,
    InputSpec,
    ModelFiles,
    OutputSpec,
    PreprocessSpec,
    Target,
    Versions,
    json_schema,
)
from edgevision.bundle.source import BundleError, Selection, Variant, select
from edgevision.errors import OutputError, first_line
from edgevision.io import UMASK, atomic_path, write_json_atomic, write_text_atomic
from edgevision.onnxmeta import load_onnx, read_metadata
from edgevision.progress import log
from edgevision.rundir import RunDir

TEMPLATES = Path(__file__).parent / "templates"
#: what a bundle folder holds; ``--force`` replaces a folder holding only these
OWNED = ("model.json", "model.schema.json", "labels.txt", "model.onnx", "model.engine",
         "model.engine.json", "model.engine.layers.json", "build_engine.sh", "run.py",
         "README.md", "cpp")
#: ONNX element types a runner feeds
_DTYPES = {1: "float32", 10: "float16"}
#: uint8 → [0, 1]
SCALE = 1 / 255


@dataclass(frozen=True)
class BundleResult:
    """The bundle folder, its archive, its metadata and why this variant and target."""

    folder: Path
    archive: Path
    metadata: BundleMetadata
    reason: str


def make_bundle(run_dir: Path, out: Path, *, variant: str | None = None,
                target: str | None = None, tensorrt_version: str | None = None,
                force: bool = False) -> BundleResult:
    """Bundle a run's model for ``target`` into the folder ``out`` and ``out.tar.gz``.

    ``variant``: default the search's chosen variant, else the run's final one; ``target``
    (openvino, onnxruntime, tensorrt): default the runtime the variant was chosen or measured
    on, else onnxruntime; ``tensorrt_version``: the device's TensorRT release (tensorrt only;
    default the installed one, else 11.4). An existing non-empty ``out`` is replaced only with
    ``force``, and only when it holds nothing but a bundle's files."""
    run = RunDir.open(run_dir)
    selection = select(run, variant, target)
    if tensorrt_version is not None and selection.target != "tensorrt":
        raise BundleError(f"--tensorrt-version is for --target tensorrt (this bundle is for "
                          f"{selection.target})")
    out = out.absolute()
    if not out.name or out.name in (".", ".."):
        raise OutputError(f"--out {out}: name the bundle's own folder")
    archive = out.with_name(out.name + ".tar.gz")
    check_out(out, archive, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial",
                                     dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write the bundle {out}: {exc.strerror or first_line(exc)}"
                          ) from None
    try:
        work.chmod(0o777 & ~UMASK)  # mkdtemp makes it private; a bundle is shared
        metadata = fill(work, run, selection, tensorrt_version)
        with atomic_path(archive) as tmp:  # written before the folder is published
            write_archive(work, tmp, out.name)
            publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BundleResult(out, archive, metadata, selection.reason)


def check_out(out: Path, archive: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a file, or holds files (without ``force``; with it, files
    a bundle does not own); and an existing archive without ``force``."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if (held or archive.exists()) and not force:
        what = f"{out} already holds files" if held else f"{archive} exists"
        raise OutputError(f"{what}; use --force to replace the bundle (or choose another --out)")
    foreign = [name for name in held if name not in OWNED]
    if foreign:
        raise OutputError(f"{out} holds files that are not a bundle's ({', '.join(foreign[:5])})"
                          "; refusing to replace them even with --force")
    if held and not _is_bundle(out):
        raise OutputError(f"{out} is not an edgevision bundle (no model.json of schema "
                          f"{BUNDLE_SCHEMA}); refusing to replace it even with --force")
    if archive.exists() and not archive.is_file():
        raise OutputError(f"{archive} exists and is not a file")


def _is_bundle(folder: Path) -> bool:
    """``folder`` holds a bundle's ``model.json`` (so ``--force`` may replace it)."""
    try:
        data = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == BUNDLE_SCHEMA


def fill(folder: Path, run: RunDir, selection: Selection,
         tensorrt_version: str | None) -> BundleMetadata:
    """Write every file of the bundle into ``folder``; returns its metadata."""
    variant, target = selection.variant, selection.target
    graph = folder / "model.onnx"
    if target == "tensorrt":
        from edgevision.bundle.tensorrt import write_tensorrt_files

        trt = write_tensorrt_files(folder, run, variant, tensorrt_version)
        source, precision = trt.source, trt.precision
        files = _model_files(run, folder, source, engine="model.engine" if trt.engine else None,
                             command=trt.command)
        batch = Batch(min=trt.min_batch, max=trt.max_batch)
        release: str | None = trt.release.label
    else:
        source = run.path / variant.path
        if variant.is_engine:
            raise BundleError(f"variant {variant.name!r} is a TensorRT engine: bundle it with "
                              "--target tensorrt")
        shutil.copyfile(source, graph)
        precision = str(read_metadata(source).get("precision", "fp32"))
        files = _model_files(run, folder, source)
        batch, release = None, None
    info = read_metadata(source)
    model_input, output = graph_io(graph, batch)
    labels = _labels(info, output.classes, source)
    metadata = BundleMetadata(
        name=str(run.manifest().get("recipe") or run.path.name), variant=_name(variant),
        target=target, precision=precision, model=files, input=model_input, output=output,
        preprocess=preprocess_spec(info, source, model_input), labels=labels,
        measured=measured(run, variant, target),
        versions=Versions(edgevision=__version__, onnx_opset=_opset(graph),
                          runtime=runtime_version(run, target), tensorrt=release,
                          pillow=PIL.__version__),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_json_atomic(folder / "model.json", metadata.to_json())
    write_json_atomic(folder / "model.schema.json", json_schema())
    write_text_atomic(folder / "labels.txt", "".join(f"{label}\n" for label in labels))
    shutil.copyfile(TEMPLATES / "run.py", folder / "run.py")
    (folder / "run.py").chmod(0o755)
    copy_cpp(target, folder / "cpp")
    write_text_atomic(folder / "README.md", readme(metadata, (folder / "cpp").is_dir()))
    return metadata


def _name(variant: Variant) -> str:
    return variant.row or variant.name


def _model_files(run: RunDir, folder: Path, source: Path, engine: str | None = None,
                 command: str | None = None) -> ModelFiles:
    return ModelFiles(file="model.onnx", sha256=sha256(folder / "model.onnx"),
                      source=f"{run.path.resolve().name}/{source.relative_to(run.path)}",
                      source_sha256=sha256(source), engine=engine, build_command=command)


def graph_io(graph: Path, batch: Batch | None) -> tuple[InputSpec, OutputSpec]:
    """The model's input (name, dtype, NCHW shape, batch range) and output, from the graph."""
    proto = load_onnx(graph, load_weights=False).graph
    if len(proto.input) != 1 or len(proto.output) != 1:
        raise BundleError(f"{graph.name}: a bundle's model has one input and one output (this "
                          f"one has {len(proto.input)} and {len(proto.output)})")
    tensor = proto.input[0].type.tensor_type
    dims = [d.dim_value if d.dim_value > 0 else -1 for d in tensor.shape.dim]
    if len(dims) != 4 or any(d < 1 for d in dims[1:]) or tensor.elem_type not in _DTYPES:
        raise BundleError(f"{graph.name}: the input must be NCHW float32/float16 with fixed "
                          f"C, H, W (got {dims}, ONNX type {tensor.elem_type})")
    fixed = dims[0] if dims[0] > 0 else None
    batch = batch or Batch(min=fixed or 1, max=fixed)
    classes = proto.output[0].type.tensor_type.shape.dim[-1].dim_value
    return (InputSpec(name=proto.input[0].name, dtype=_DTYPES[tensor.elem_type],  # type: ignore[arg-type]
                      layout="NCHW", shape=dims, batch=batch),
            OutputSpec(name=proto.output[0].name, kind="logits", classes=max(classes, 1)))


def preprocess_spec(info: dict[str, Any], source: Path, model_input: InputSpec
                    ) -> PreprocessSpec:
    """edgevision's ``Preprocess`` (the ONNX metadata's ``preprocess``) as the bundle's
    fields; mean/std of one value are given per channel."""
    pre = info.get("preprocess")
    if not isinstance(pre, dict) or "mean" not in pre or "std" not in pre:
        raise BundleError(f"{source.name} carries no edgevision preprocessing metadata (export "
                          "it with edgevision): a bundle needs it")
    channels = int(pre.get("channels", 3))
    if channels != model_input.shape[1]:
        raise BundleError(f"{source.name}: its preprocessing makes {channels} channels; the "
                          f"model takes {model_input.shape[1]}")
    color = "RGB" if channels == 3 else "L"

    def per_channel(values: list[float]) -> list[float]:
        return [float(v) for v in values] * (channels if len(values) == 1 else 1)

    return PreprocessSpec(color=color, resize_shorter=pre.get("resize"),
                          center_crop=pre.get("image_size"), interpolation="bilinear-pillow",
                          scale=SCALE, mean=per_channel(pre["mean"]),
                          std=per_channel(pre["std"]), channel_order=color, layout="CHW")


def _labels(info: dict[str, Any], classes: int, source: Path) -> list[str]:
    labels = [str(label) for label in info.get("labels") or []]
    if not labels:
        log(f"[yellow]{source.name} carries no labels: labels.txt numbers the classes[/yellow]")
        return [str(i) for i in range(classes)]
    if len(labels) != classes:
        raise BundleError(f"{source.name}: {len(labels)} labels for {classes} outputs")
    return labels


def _opset(graph: Path) -> int | None:
    for entry in load_onnx(graph, load_weights=False).opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def copy_cpp(target: Target, cpp: Path) -> None:
    """The C++ runner: ``templates/cpp/<target>/`` as ``cpp/`` and ``templates/cpp/common/``
    as ``cpp/common/``; nothing when the target has none."""
    runner = TEMPLATES / "cpp" / target
    if not runner.is_dir():
        if target in CPP_SECTIONS:
            log(f"[yellow]this edgevision has no C++ runner for {target}: the bundle has "
                "none[/yellow]")
        return
    shutil.copytree(runner, cpp)
    common = TEMPLATES / "cpp" / "common"
    if common.is_dir():
        shutil.copytree(common, cpp / "common")


def readme(metadata: BundleMetadata, has_cpp: bool) -> str:
    """The bundle's README.md (templates/README.md with this bundle's names)."""
    text = Template((TEMPLATES / "README.md").read_text(encoding="utf-8"))
    runtime = {"openvino": "openvino", "onnxruntime": "onnxruntime",
               "tensorrt": "tensorrt cuda-python"}[metadata.target]
    pre = metadata.preprocess
    steps = ", ".join(filter(None, [
        f"shorter side to {pre.resize_shorter}" if pre.resize_shorter else "",
        f"center crop {pre.center_crop}" if pre.center_crop else "",
        f"mean {pre.mean}, std {pre.std}"]))
    cpp = CPP_SECTIONS.get(metadata.target, NO_CPP) if has_cpp else NO_CPP
    return text.substitute(name=metadata.name, variant=metadata.variant,
                           target=metadata.target, precision=metadata.precision,
                           size="x".join(str(d) for d in metadata.input.shape[2:]),
                           color=pre.color, steps=steps, runtime=runtime,
                           engine_step=ENGINE_STEP if metadata.target == "tensorrt" else "",
                           cpp=cpp)


ENGINE_STEP = """First build the engine on the device (TensorRT's `trtexec` on PATH, or set
`TRTEXEC`; an engine runs only on the GPU model and TensorRT release that built it):

```bash
./build_engine.sh
```

"""
CPP_BUILD = """Needs CMake, a C++17 compiler and `apt-get install nlohmann-json3-dev libstb-dev
libjpeg-dev zlib1g-dev` (Debian, Ubuntu, JetPack). It reads PNG and JPEG images.

```bash
cmake -S cpp -B build {options}
cmake --build build
build/edgevision-run model.json image.jpg
```
"""
CPP_SECTIONS = {
    "openvino": CPP_BUILD.format(options="-DOpenVINO_DIR=$(python -c 'import openvino, os; "
                                 "print(os.path.dirname(openvino.__file__))')/cmake")
    + "\nThe OpenVINO C++ SDK ships in the `openvino` wheel (`pip install openvino`).\n",
    "tensorrt": CPP_BUILD.format(options="")
    + "\nNeeds the CUDA toolkit and TensorRT's headers and libraries (JetPack has both; "
    "cpp/CMakeLists.txt says where it looks for them).\n",
}
NO_CPP = ("This bundle has no C++ runner (edgevision ships them for openvino and tensorrt): use "
          "the Python runner, or bundle for one of those.\n")


def publish(work: Path, out: Path) -> None:
    """Rename the finished folder ``work`` to ``out`` (a bundle already there is replaced)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{work.name}.old")
        out.rename(old)
    try:
        work.rename(out)
    except OSError as exc:
        if old is not None:
            old.rename(out)
        raise OutputError(f"cannot write {out}: {first_line(exc)}") from None
    if old is not None:
        shutil.rmtree(old)


def write_archive(folder: Path, archive: Path, name: str) -> Path:
    """``folder`` as a .tar.gz whose top-level folder is ``name``."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=name)
    return archive


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
