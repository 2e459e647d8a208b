#!/usr/bin/env python3
"""Run this edgevision bundle's model on images: top-5 classes and latency.

    python run.py IMAGE... [--runs N] [--json]

Needs only NumPy, Pillow and the bundle's runtime (model.json "target"): openvino,
onnxruntime, or tensorrt + cuda-python (model.engine, made by build_engine.sh). No torch, no
edgevision. Preprocessing follows model.json exactly as edgevision did in training and
measurement (edgevision.data.preprocess.Preprocess); errors are one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SCHEMA = "edgevision.bundle/1"
HERE = Path(__file__).resolve().parent
WARMUP = 5

Infer = Callable[[np.ndarray], np.ndarray]


class RunnerError(Exception):
    """A one-line error for the user (bad image, bad bundle, runtime missing)."""


def load_metadata(path: Path) -> dict[str, Any]:
    """model.json, checked for the fields this runner reads."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError(f"cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise RunnerError(f"{path} is not an {SCHEMA} model.json")
    for key in ("target", "model", "input", "output", "preprocess", "labels"):
        if key not in meta:
            raise RunnerError(f"{path}: {key!r} is missing")
    pre = meta["preprocess"]
    for key, known in SUPPORTED.items():
        if pre.get(key) not in known:
            raise RunnerError(f"{path}: preprocess {key} {pre.get(key)!r} is not one this "
                              f"runner implements ({', '.join(known)})")
    return meta


#: the preprocessing values this runner implements (others are refused, not guessed)
SUPPORTED = {"color": ("RGB", "L"), "channel_order": ("RGB", "L"), "layout": ("CHW",),
             "interpolation": ("bilinear-pillow",)}


def read_image(path: Path) -> Image.Image:
    """Decode one image file fully."""
    if not path.is_file():
        raise RunnerError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except Image.DecompressionBombError as exc:  # Pillow's pixel limit
        raise RunnerError(f"{path} is too large to decode: {exc}") from None
    except (OSError, ValueError) as exc:  # UnidentifiedImageError, truncated files
        raise RunnerError(f"cannot decode image {path}: {exc}") from None


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (Python round), Pillow's bilinear; unchanged when it fits."""
    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image if new == image.size else image.resize(new, Image.Resampling.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        image = resize_shorter(image, size)
        width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def preprocess(image: Image.Image, pre: dict[str, Any]) -> np.ndarray:
    """Colour, resize, crop, [0, 1], mean/std: CHW float32 (model.json "preprocess")."""
    image = image.convert(pre["color"])
    crop = pre.get("center_crop")
    if pre.get("resize_shorter"):
        image = resize_shorter(image, int(pre["resize_shorter"]))
    if crop:
        if not pre.get("resize_shorter") and image.size != (crop, crop):
            image = resize_shorter(image, int(crop))
        image = center_crop(image, int(crop))
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    # divide by 255 (1 / scale) in float32, as edgevision does: multiplying by the scale
    # rounds differently for about half the pixel values
    array = pixels.astype(np.float32) / np.float32(1.0 / float(pre["scale"]))
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray((array - mean) / std)


def prepare(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """One image file as the model's input: NxCxHxW with N the smallest batch the model takes
    (the image repeated; the first output is the image's)."""
    try:
        chw = preprocess(read_image(path), meta["preprocess"])
    except MemoryError:
        raise RunnerError(f"{path}: not enough memory to preprocess it") from None
    want = tuple(meta["input"]["shape"][1:])
    if chw.shape != want:
        raise RunnerError(f"{path}: image is {chw.shape[2]}x{chw.shape[1]} after "
                          f"preprocessing; the model takes {want[2]}x{want[1]} (model.json "
                          "preprocess has no resize/crop rule that makes it fit)")
    return np.repeat(chw[None], smallest_batch(meta), axis=0).astype(meta["input"]["dtype"])


def smallest_batch(meta: dict[str, Any]) -> int:
    """The batch one image runs at: the fixed batch, else the profile's minimum (at least 1)."""
    fixed = meta["input"]["shape"][0]
    if isinstance(fixed, int) and fixed > 0:
        return fixed
    return max(1, int((meta["input"].get("batch") or {}).get("min") or 1))


def open_model(meta: dict[str, Any], folder: Path) -> Infer:
    """A function running one batch with the target's runtime."""
    openers = {"openvino": _openvino, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}
    target = meta["target"]
    if target not in openers:
        raise RunnerError(f"unknown target {target!r} in model.json")
    # tensorrt runs the engine: the one shipped, or the one build_engine.sh makes
    model = folder / ((meta["model"]["engine"] or "model.engine") if target == "tensorrt"
                      else meta["model"]["file"])
    if not model.is_file():
        hint = " (run build_engine.sh on the device first)" if target == "tensorrt" else ""
        raise RunnerError(f"model file {model} is missing{hint}")
    try:
        return openers[target](model, meta)
    except ImportError as exc:
        raise RunnerError(f"the {target} runtime is not installed ({exc}): "
                          f"{INSTALL[target]}") from None


INSTALL = {"openvino": "pip install openvino", "onnxruntime": "pip install onnxruntime",
           "tensorrt": "install TensorRT and cuda-python (pip install cuda-python)"}


def _openvino(model: Path, meta: dict[str, Any]) -> Infer:
    """OpenVINO on the CPU, computing in f32, one static shape per batch size."""
    import openvino as ov

    core = ov.Core()
    try:
        network = core.read_model(str(model))
    except Exception as exc:  # OpenVINO's own RuntimeError subclasses
        raise RunnerError(f"OpenVINO cannot read {model}: {first_line(exc)}") from None
    compiled: dict[tuple[int, ...], Any] = {}
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}

    def infer(batch: np.ndarray) -> np.ndarray:
        if batch.shape not in compiled:
            shaped = network.clone()
            shaped.reshape({shaped.inputs[0]: list(batch.shape)})
            compiled[batch.shape] = core.compile_model(shaped, "CPU",
                                                       config).create_infer_request()
        request = compiled[batch.shape]
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data)

    return infer


def _onnxruntime(model: Path, meta: dict[str, Any]) -> Infer:
    """ONNX Runtime's CPU provider, every graph optimisation on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types
        raise RunnerError(f"ONNX Runtime cannot load {model}: {first_line(exc)}") from None
    name = meta["input"]["name"]

    def infer(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch})[0])

    return infer


def _tensorrt(engine: Path, meta: dict[str, Any]) -> Infer:
    """TensorRT: plugins registered, deserialize, pinned host and device buffers for the
    profile's largest batch (allocated once, so the timed runs measure copies and compute,
    not allocation), enqueueV3 on a stream, dtypes from the engine (cuda-python).
    UNVERIFIED here: written against TensorRT 10/11's Python API, never run by edgevision's
    tests (they have no GPU)."""
    import ctypes

    import tensorrt as trt

    try:
        from cuda.bindings import runtime as cudart
    except ImportError:  # cuda-python before 12.6
        from cuda import cudart  # type: ignore[no-redef]

    def check(result: Any) -> Any:
        error, *values = result if isinstance(result, tuple) else (result,)
        if error != cudart.cudaError_t.cudaSuccess:
            raise RunnerError(f"CUDA error {error}")
        return values[0] if len(values) == 1 else None

    def pinned(count: int, dtype: np.dtype) -> np.ndarray:
        pointer = check(cudart.cudaMallocHost(count * dtype.itemsize))
        raw = ctypes.cast(ctypes.c_void_p(int(pointer)), ctypes.POINTER(ctypes.c_ubyte))
        return np.ctypeslib.as_array(raw, (count * dtype.itemsize,)).view(dtype)

    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # type: ignore[arg-type]
    runtime = trt.Runtime(logger)
    cuda_engine = runtime.deserialize_cuda_engine(engine.read_bytes())
    if cuda_engine is None:
        raise RunnerError(f"TensorRT {trt.__version__} cannot deserialize {engine} (built by "
                          "another TensorRT version or GPU? run build_engine.sh here)")
    context = cuda_engine.create_execution_context()
    stream = check(cudart.cudaStreamCreate())
    name_in, name_out = meta["input"]["name"], meta["output"]["name"]
    dtype_in = np.dtype(trt.nptype(cuda_engine.get_tensor_dtype(name_in)))
    dtype_out = np.dtype(trt.nptype(cuda_engine.get_tensor_dtype(name_out)))
    profile_max = cuda_engine.get_tensor_profile_shape(name_in, 0)[2]
    largest = tuple(int(profile_max[i]) for i in range(len(profile_max)))
    if not context.set_input_shape(name_in, largest):
        raise RunnerError(f"the engine does not take its own largest shape {largest}")
    out_dims = context.get_tensor_shape(name_out)
    host_in = pinned(int(np.prod(largest)), dtype_in)
    host_out = pinned(int(np.prod([out_dims[i] for i in range(len(out_dims))])), dtype_out)
    d_in = check(cudart.cudaMalloc(host_in.nbytes))
    d_out = check(cudart.cudaMalloc(host_out.nbytes))
    context.set_tensor_address(name_in, int(d_in))
    context.set_tensor_address(name_out, int(d_out))

    def infer(batch: np.ndarray) -> np.ndarray:
        if not context.set_input_shape(name_in, batch.shape):
            raise RunnerError(f"the engine does not take batch shape {batch.shape}")
        dims = context.get_tensor_shape(name_out)
        out_shape = tuple(dims[i] for i in range(len(dims)))
        host = host_in[:batch.size].reshape(batch.shape)
        host[...] = batch
        out = host_out[:int(np.prod(out_shape))].reshape(out_shape)
        check(cudart.cudaMemcpyAsync(d_in, host.ctypes.data, host.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        if not context.execute_async_v3(int(stream)):
            raise RunnerError("TensorRT failed to run the engine")
        check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
        check(cudart.cudaStreamSynchronize(stream))
        return out.astype(np.float32)

    return infer


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def top5(scores: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """The five highest outputs (stable: ties keep index order)."""
    order = np.argsort(-scores, kind="stable")[:5]
    return [{"index": int(i), "label": labels[i], "score": float(scores[i])} for i in order]


def latency(infer: Infer, batch: np.ndarray, runs: int) -> dict[str, Any]:
    """Median and p90 (ms) of ``runs`` timed runs after a warm-up."""
    for _ in range(WARMUP):
        infer(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        infer(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p90 = np.percentile(times, [50, 90])
    return {"p50": float(p50), "p90": float(p90), "runs": runs, "batch": int(batch.shape[0])}


def run(images: list[Path], runs: int, folder: Path = HERE) -> dict[str, Any]:
    """Top-5 of every image (each run at batch 1) and the latency of the first."""
    meta = load_metadata(folder / "model.json")
    inputs = [prepare(path, meta) for path in images]  # every image checked before running
    infer = open_model(meta, folder)
    try:
        results = [{"file": str(path), "top5": top5(infer(batch)[0].astype(np.float64),
                                                    meta["labels"])}
                   for path, batch in zip(images, inputs, strict=True)]
        timing = latency(infer, inputs[0], runs) if runs else None
    except RunnerError:
        raise
    except Exception as exc:  # the runtime's own error types
        raise RunnerError(f"the {meta['target']} runtime failed: {first_line(exc)}") from None
    return {"images": results, "latency_ms": timing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs of the first image at batch 1 (0: no timing)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        if args.runs < 0:
            raise RunnerError("--runs must be >= 0")
        result = run(args.images, args.runs)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    for image in result["images"]:  # the C++ runner prints the same lines
        print(image["file"])
        for rank, entry in enumerate(image["top5"], 1):
            print(f"  {rank}. {entry['label']:<20} ({entry['index']})  {entry['score']:.6g}")
    if result["latency_ms"]:
        timing = result["latency_ms"]
        print(f"latency: p50 {timing['p50']:.3f} ms, p90 {timing['p90']:.3f} ms ({timing['runs']} "
              f"runs of the first image, batch {timing['batch']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
