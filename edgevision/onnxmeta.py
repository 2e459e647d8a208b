"""ONNX files and edgevision's metadata in them (preprocessing, labels, precision...).

Needs only the ``onnx`` package — no torch — so reading an artifact's metadata works on a
device with just a runtime installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from edgevision.errors import ArtifactError, first_line
from edgevision.io import atomic_path

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
METADATA_KEY = "edgevision"
#: the metadata entry of a derived graph (INT8, FP16) naming the FP32 ONNX file it was made
#: from, relative to its own folder
FP32_SOURCE_KEY = "fp32_source"


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    """Store ``metadata`` as edgevision's JSON entry in ``proto.metadata_props`` (replacing it)."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (METADATA_KEY, json.dumps(metadata))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def write_metadata(path: Path, metadata: dict[str, Any]) -> Path:
    """Rewrite the ONNX file ``path`` with edgevision's ``metadata`` (atomically)."""
    proto = load_onnx(path)
    set_metadata(proto, metadata)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """edgevision's metadata stored in an ONNX file ({} when absent); corrupt files raise."""
    proto = load_onnx(path, load_weights=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            try:
                return dict(json.loads(entry.value))
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                raise ArtifactError(f"{path}: its edgevision metadata is not valid JSON "
                                    f"({first_line(exc)})") from None
    return {}


def fp32_origin(path: Path) -> Path | None:
    """The FP32 ONNX file ``path`` is or was made from: the file its metadata's
    ``fp32_source`` names, else ``path`` itself when its metadata says FP32 (or no precision);
    None for a derived graph that does not record its source (written before it was recorded)
    or whose recorded source is not beside it (a copied graph: ``deploy.onnx``, a bundle)."""
    metadata = read_metadata(path)
    source = metadata.get(FP32_SOURCE_KEY)
    if source:
        origin = path.parent / str(source)
        copied = not origin.is_file() or origin.resolve() == path.resolve()
        return None if copied else origin
    return path if metadata.get("precision", "fp32") == "fp32" else None


def fp32_source_entry(src: Path, out: Path) -> dict[str, str]:
    """The metadata entry for a graph written to ``out`` from ``src``: the FP32 file behind
    ``src``, relative to ``out``'s folder ({} when unknown)."""
    origin = fp32_origin(src)
    if origin is None:
        return {}
    try:
        return {FP32_SOURCE_KEY: Path(os.path.relpath(origin, out.parent)).as_posix()}
    except ValueError:  # another drive (Windows): no relative path
        return {}


def load_onnx(path: Path, load_weights: bool = True) -> onnx.ModelProto:
    """Load an ONNX file, turning a missing, empty or corrupt file into a one-line
    ``ArtifactError`` (protobuf parses an empty file as an empty model: that is refused too)."""
    if not path.is_file():
        raise ArtifactError(f"ONNX file {str(path)!r} not found")
    if path.stat().st_size == 0:
        raise ArtifactError(f"{path} is empty (0 bytes), not a valid ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ArtifactError(f"{path} is not a valid ONNX model ({type(exc).__name__}: "
                            f"{first_line(exc)})") from None
    if not proto.HasField("graph"):
        raise ArtifactError(f"{path} is not a valid ONNX model (it holds no graph)")
    return proto
