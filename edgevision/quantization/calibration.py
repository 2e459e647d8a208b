"""Calibration images (see calibration/README.md), the reader ONNX Runtime's calibrator pulls
batches from, and the key that decides when cached ranges are still valid."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from PIL import Image

from edgevision.data import Dataset, EvalSet
from edgevision.data.sources import IMAGE_EXTENSIONS, FolderSource, read_image
from edgevision.errors import DataError
from edgevision.progress import progress_bar
from edgevision.quantization.config import CalibrationSpec


@dataclass
class ImageFilesSource:
    """Unlabelled image files (a calibration folder, flat or in class sub-folders)."""

    files: list[Path]
    classes: list[str]

    @classmethod
    def scan(cls, folder: Path) -> ImageFilesSource:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"calibration folder {str(folder)!r} holds no images "
                            f"({', '.join(IMAGE_EXTENSIONS)})")
        return cls(files, ["unlabelled"])

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> Image.Image:
        return read_image(self.files[index])

    def label(self, index: int) -> int:
        return 0


def calibration_images(spec: CalibrationSpec, dataset: Dataset) -> tuple[EvalSet, str]:
    """The calibration set the spec names, and a fingerprint of exactly which images it holds."""
    if spec.images == "train":
        images = dataset.calibration_set()
        identity = json.dumps({"root": str(Path(dataset.spec.root).resolve()),
                               **dataset.calibration_manifest()}, sort_keys=True)
    else:
        path = Path(spec.images)
        if path.is_dir():
            source = ImageFilesSource.scan(path)
            images = EvalSet(source, list(range(len(source))), dataset.preprocess,
                             name="calibration")
            identity = json.dumps([_file_identity(p) for p in source.files])
        elif path.is_file():
            images = _listed_images(path, dataset)
            identity = json.dumps([path.read_text(encoding="utf-8"),
                                   str(Path(dataset.spec.root).resolve())])
        else:
            raise DataError(f"calibration images {spec.images!r}: no such list file or folder "
                            "(use 'train', calibration/<name>.txt or a folder of images)")
    fingerprint = json.dumps({"images": identity, "preprocess": dataset.preprocess.to_dict()})
    return images, fingerprint


def _file_identity(path: Path) -> str:
    """Path, size and modification time: a replaced image changes the key."""
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _listed_images(list_file: Path, dataset: Dataset) -> EvalSet:
    """Images named one per line (relative to the training split folder; # comments)."""
    source = dataset.train_source
    if not isinstance(source, FolderSource):
        raise DataError(f"{list_file}: a calibration list file needs an imagefolder dataset "
                        f"(this recipe's is {dataset.spec.dataset}); use a folder of images")
    lines = [line.split("#", 1)[0].strip()
             for line in list_file.read_text(encoding="utf-8").splitlines()]
    wanted = [line for line in lines if line]
    if not wanted:
        raise DataError(f"calibration list {list_file} names no images")
    position = {source.relative_path(i): i for i in range(len(source))}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise DataError(f"calibration list {list_file}: {len(missing)} image(s) not in "
                        f"{source.root} (first: {missing[0]})")
    return EvalSet(source, [position[name] for name in wanted], dataset.preprocess,
                   name="calibration")


def check_calibration_shape(images: EvalSet, input_shape: tuple[int, ...]) -> None:
    """Raise a clear ``DataError`` when the calibration images do not fit the model input."""
    if len(images) == 0:
        raise DataError("the calibration set is empty (data.calibration_size or the list file)")
    shape = images.sample_shape()
    if tuple(shape) != tuple(input_shape):
        raise DataError(f"calibration images have shape {tuple(shape)} but the model expects "
                        f"{tuple(input_shape)} (check data.image_size and data.channels)")


class BatchReader(CalibrationDataReader):  # type: ignore[misc]
    """ONNX Runtime ``CalibrationDataReader``: feeds preprocessed batches, with a progress bar."""

    def __init__(self, images: EvalSet, input_name: str, batch_size: int) -> None:
        self.images, self.input_name, self.batch_size = images, input_name, batch_size
        self._batches: Iterator[tuple[np.ndarray, np.ndarray]] | None = None
        self._progress = progress_bar()
        self._task = self._progress.add_task("calibrating", total=len(images), status="")

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._batches is None:
            self._progress.start()
            self._batches = self.images.batches(self.batch_size)
        batch = next(self._batches, None)
        if batch is None:
            self._progress.stop()
            return None
        self._progress.advance(self._task, len(batch[0]))
        return {self.input_name: batch[0]}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (item := self.get_next()) is not None:
            yield item

    def __len__(self) -> int:
        return len(self.images)


def cache_key(model_path: Path, fingerprint: str, settings: dict[str, object]) -> str:
    """sha256 of the FP32 model's bytes, the calibration images, the range settings and the
    ONNX Runtime version (its pre-processing shapes the calibrated graph)."""
    import onnxruntime

    digest = hashlib.sha256(model_path.read_bytes())
    digest.update(onnxruntime.__version__.encode())
    digest.update(fingerprint.encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()
