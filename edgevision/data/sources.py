"""Image sources: an ImageFolder split (or an archive of one), CIFAR-10, Fashion-MNIST.

A source is a list of (image, label) pairs with ``classes``; it loads PIL images on demand.
ImageFolder needs only PIL; the torchvision datasets import torchvision when used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from edgevision.errors import DataError, first_line
from edgevision.progress import log

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class ImageSource(Protocol):
    """Indexable (PIL image, label) pairs with class names."""

    classes: list[str]

    def __len__(self) -> int: ...

    def image(self, index: int) -> Image.Image: ...

    def label(self, index: int) -> int: ...


def cache_dir() -> Path:
    """edgevision's cache: ``$EDGEVISION_CACHE`` or ``~/.cache/edgevision``."""
    return Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision"))


def read_image(path: Path) -> Image.Image:
    """Decode one image file fully; an unreadable file is a one-line ``DataError``."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, Image.DecompressionBombError) as exc:  # the latter: Pillow's pixel limit
        raise DataError(f"cannot read image {path}: {exc}") from None


@dataclass
class FolderSource:
    """One split of an ImageFolder tree: ``<split>/<class>/<image>``."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]

    @classmethod
    def scan(cls, root: Path) -> FolderSource:
        """List class folders (sorted) and their images (sorted)."""
        if not root.is_dir():
            raise DataError(f"dataset folder {str(root)!r} not found")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            images = sorted(p for p in (root / name).iterdir()
                            if p.suffix.lower() in IMAGE_EXTENSIONS)
            files += images
            labels += [label] * len(images)
        if not files:
            raise DataError(f"dataset folder {str(root)!r} holds no images in class "
                            "sub-folders (expected <split>/<class>/<image>.jpg)")
        return cls(root, classes, files, labels)

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> Image.Image:
        return read_image(self.files[index])

    def label(self, index: int) -> int:
        return self.labels[index]

    def relative_path(self, index: int) -> str:
        return self.files[index].relative_to(self.root).as_posix()


@dataclass
class ArraySource:
    """Images held as a uint8 array (N, H, W[, C]), as torchvision's CIFAR/MNIST store them."""

    data: Any
    targets: list[int]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> Image.Image:
        array = self.data[index]
        array = array.numpy() if hasattr(array, "numpy") else array
        return Image.fromarray(array)

    def label(self, index: int) -> int:
        return int(self.targets[index])


def open_split(dataset: str, root: Path, split: str, *, download: bool = False,
               train_split: str = "train") -> ImageSource:
    """Open one split of a dataset described by a recipe's data section."""
    if dataset == "imagefolder":
        return FolderSource.scan(find_split_dir(prepare_root(root), split))
    is_train = split == train_split
    if split not in (train_split, "test"):
        raise DataError(f"{dataset} has the splits {train_split!r} and 'test', not {split!r}")
    if dataset == "cifar10":
        return _torchvision_source("CIFAR10", root, is_train, download)
    if dataset == "fashion_mnist":
        return _torchvision_source("FashionMNIST", fashion_mnist_root(root, download),
                                   is_train, download)
    raise DataError(f"unknown dataset kind {dataset!r}")


def prepare_root(root: Path) -> Path:
    """Return ``root``, or the cached extraction of it when it is an archive."""
    if not root.exists():
        raise DataError(f"dataset path {str(root)!r} not found")
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        return extract_archive(root)
    if not root.is_dir():
        raise DataError(f"dataset path {str(root)!r} is neither a folder nor an archive "
                        f"({', '.join(ARCHIVE_SUFFIXES)})")
    return root


def extract_archive(archive: Path) -> Path:
    """Extract ``archive`` once into the cache (keyed by its sha256) and return the folder."""
    digest = _sha256(archive)[:16]
    stem = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        stem = stem.removesuffix(suffix)
    target = cache_dir() / "datasets" / f"{stem}-{digest}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=target.parent))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(staging, filter="data")
        os.replace(staging, target)
    except FileExistsError:
        pass  # another process finished first
    except OSError as exc:
        if not target.is_dir():
            raise DataError(f"cannot extract {archive}: {exc}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot extract {archive} (truncated or corrupt?): "
                        f"{first_line(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def find_split_dir(base: Path, split: str) -> Path:
    """``base/split``, or ``base/<single folder>/split`` (how archives usually nest)."""
    if (base / split).is_dir():
        return base / split
    children = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    nested = [c / split for c in children if (c / split).is_dir()]
    if len(nested) == 1:
        return nested[0]
    found = ", ".join(sorted(p.name for p in children)[:8]) or "nothing"
    raise DataError(f"no {split!r} split folder under {base} (found: {found}); expected "
                    f"{base}/{split}/<class>/<image>")


def fashion_mnist_root(root: Path, download: bool) -> Path:
    """A root torchvision's FashionMNIST can read: ``root`` itself, or a cache folder made from
    the IDX ``.gz`` files in ``root`` (such as Debian's dataset-fashion-mnist package)."""
    if (root / "FashionMNIST" / "raw").is_dir() or download:
        return root
    gz_dir = next((d for d in (root, FASHION_MNIST_SYSTEM_DIR)
                   if (d / f"{FASHION_MNIST_FILES[0]}.gz").is_file()), None)
    if gz_dir is not None and gz_dir != root:
        log(f"Fashion-MNIST is not in {root}; reading the system copy in {gz_dir}")
    if gz_dir is None:
        raise DataError(f"Fashion-MNIST not found in {root} (nor in {FASHION_MNIST_SYSTEM_DIR});"
                        " install the Debian package dataset-fashion-mnist, or set "
                        "data.download: true")
    target = cache_dir() / "datasets" / f"fashion-mnist-{_sha256_text(str(gz_dir.resolve()))[:8]}"
    raw = target / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for name in FASHION_MNIST_FILES:
            tmp = raw / f".{name}.partial"
            with gzip.open(gz_dir / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, raw / name)
    return target


def _torchvision_source(kind: str, root: Path, train: bool, download: bool) -> ArraySource:
    import torchvision

    cls = getattr(torchvision.datasets, kind)
    try:
        dataset = cls(str(root), train=train, download=download)
    except RuntimeError as exc:
        hint = "" if download else " (set data.download: true to fetch it)"
        raise DataError(f"{kind} not found under {root}: {first_line(exc)}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"could not download {kind} to {root} ({first_line(exc)}); without "
                        "internet, place the dataset files there and set data.download: "
                        "false") from None
    return ArraySource(dataset.data, list(map(int, dataset.targets)), list(dataset.classes))
