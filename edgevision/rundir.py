"""The run directory: what ``compress`` writes, its manifest ``run.json`` and its lock.

A process that writes to (or measures) a run directory holds its lock (``run.lock``, an OS
file lock that dies with the process), so two runs never share one folder and a killed run
never leaves a stale lock: a manifest that still says ``running`` while the lock is free
belongs to a process that died, and is shown (and rewritten) as ``interrupted``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path
from types import TracebackType
from typing import Any

from edgevision.errors import RunDirError, first_line
from edgevision.io import check_writable, write_json_atomic
from edgevision.runlock import RunLock

MANIFEST = "run.json"
RUN_SCHEMA = "edgevision.run/1"
RECIPE_FILE = "recipe.yaml"
LOCK_FILE = "run.lock"

#: what edgevision writes at the top of a run directory (besides the manifest's artifacts);
#: ``--force`` deletes these and nothing else
OWNED_FILES = (MANIFEST, LOCK_FILE, RECIPE_FILE, "calibration.json", "report.json",
               "report.csv", "report.stale.json", "report.stale.csv", "deploy.onnx",
               "pareto.png", "summary.md", "model.pt", "model.onnx", "unpruned.pt",
               "unpruned.onnx", "pruned.pt", "pruned.onnx")
OWNED_PATTERNS = ("model.ranges-*.json", "model.*.engine", "model.*.engine.json",
                  "model.*.engine.layers.json", "model.*.trt.onnx", ".*.partial")
OWNED_FOLDERS = ("train", "distill", "prune", "qat", "quantize", "search", "benchmark")
STATUS_DEAD = "interrupted"
#: the quantize stage's graphs (see ``quantized_file``)
QUANTIZED_KINDS = ("int8", "int8-mixed", "int8-qat", "fp16")
QUANTIZE_TARGETS = ("cpu", "tensorrt")


def quantized_file(kind: str, target: str) -> str:
    """The file name of a quantize stage graph: ``kind`` is one of ``QUANTIZED_KINDS``; INT8
    graphs for TensorRT (symmetric signed Q/DQ) are named apart from the CPU target's
    (``model.int8.trt.onnx`` beside ``model.int8.onnx``) so neither replaces the other."""
    if kind not in QUANTIZED_KINDS:
        raise ValueError(f"unknown quantized graph kind {kind!r}")
    suffix = ".trt" if kind != "fp16" and target == "tensorrt" else ""
    return f"model.{kind}{suffix}.onnx"


def is_quantized_file(path: str) -> bool:
    """Whether ``path`` (relative to a run or a search level) names a quantize stage graph."""
    return Path(path).name in {quantized_file(kind, target) for kind in QUANTIZED_KINDS
                               for target in QUANTIZE_TARGETS}


@dataclass
class RunDir:
    """A run directory and its manifest (status, artifacts); a context manager that releases
    the directory's lock (when this object holds it) on exit."""

    path: Path
    lock: RunLock | None = field(default=None, repr=False, compare=False)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock (if held); the directory may then be used by another process."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @classmethod
    def check_target(cls, path: Path, *, force: bool = False, resume: bool = False) -> None:
        """Refuse at once, before any work, an ``--out`` that ``prepare`` would refuse: an
        argument conflict, a folder that is not a run, a run without ``--force``/``--resume``,
        one that is in use, foreign files that ``--force`` would have to delete, or a location
        that cannot be written."""
        if force and resume:
            raise RunDirError("--force and --resume contradict each other: choose one")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"--out {str(path)!r} exists and is not a directory")
        check_location(path)
        if not _holds_files(path):
            return
        if resume:
            cls.open(path, lock=True, purpose="resume").release()
            return
        if not force:
            what = "a run" if (path / MANIFEST).exists() else "files"
            raise RunDirError(f"{path} already holds {what}; use --force to overwrite it or "
                              "--resume to continue it")
        if not (path / MANIFEST).exists():
            raise RunDirError(f"{path} holds files that are not an edgevision run; refusing "
                              "to delete them even with --force (choose another --out)")
        with cls.open(path, lock=True, purpose="overwrite") as run:
            run.check_only_owned()

    @classmethod
    def prepare(cls, path: Path, *, force: bool = False, resume: bool = False) -> RunDir:
        """Create and lock ``path`` for a new run; refuse one that holds files unless ``force``
        (delete what edgevision wrote there; refuse when it holds other files too) or
        ``resume`` (continue it; the pipeline decides whether its recipe may). The caller
        releases the lock (``with`` or ``release``)."""
        cls.check_target(path, force=force, resume=resume)
        if _holds_files(path):
            run = cls.open(path, lock=True, purpose="resume" if resume else "overwrite")
            try:
                if not resume:
                    run.remove_owned()
            except BaseException:
                run.release()
                raise
            return run
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, _acquire(path))

    @classmethod
    def open(cls, path: Path, *, lock: bool = False, purpose: str = "use",
             read_only_ok: bool = False) -> RunDir:
        """An existing run directory (must hold ``run.json``); with ``lock``, locked for this
        process (a one-line error when another holds it), and a dead run's ``running`` status
        rewritten as ``interrupted``. ``read_only_ok``: a run this process cannot write (a
        read-only mount, another user's) is opened unlocked instead of refused."""
        if not (path / MANIFEST).is_file():
            raise RunDirError(f"{path} is not an edgevision run directory (no {MANIFEST})")
        if not lock:
            return cls(path)
        if read_only_ok:
            try:
                check_writable(path)
            except OSError:
                return cls(path)
        run = cls(path, _acquire(path, purpose))
        try:
            run.mark_dead_run()
        except BaseException:
            run.release()
            raise
        return run

    def status(self) -> str:
        """The manifest's status, ``interrupted`` for a ``running`` run whose process is gone
        (its lock is free)."""
        status = str(self.manifest().get("status", "unknown"))
        if status == "running" and self.lock is None and not RunLock.held(self.path / LOCK_FILE):
            return STATUS_DEAD
        return status

    def mark_dead_run(self) -> None:
        """Record a ``running`` manifest as interrupted; call only while holding the lock (so
        the process that wrote ``running`` is gone)."""
        if self.manifest().get("status") == "running":
            self.write_manifest(status=STATUS_DEAD, error="the process stopped without "
                                "recording why (killed?)")

    def foreign_files(self) -> list[str]:
        """Top-level entries that edgevision did not write (not in the run layout nor the
        manifest's artifacts), sorted."""
        listed = {a["path"].split("/")[0] for a in self.manifest().get("artifacts", [])}
        return sorted(entry.name for entry in self.path.iterdir()
                      if entry.name not in listed and not _owned(entry))

    def check_only_owned(self) -> None:
        """Refuse (naming them) when the folder holds files edgevision did not write."""
        foreign = self.foreign_files()
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" (and {len(foreign) - 5} more)"
                                              if len(foreign) > 5 else "")
            raise RunDirError(f"{self.path} holds files edgevision did not write ({shown}); "
                              "--force deletes only a run's own files: move them, or choose "
                              "another --out")

    def remove_owned(self) -> None:
        """Delete what edgevision wrote (never the lock this process holds, never anything
        else: refuses when the folder holds other files)."""
        self.check_only_owned()
        for entry in self.path.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def manifest(self) -> dict[str, Any]:
        """The stored manifest ({} before the first write)."""
        file = self.path / MANIFEST
        if not file.is_file():
            return {}
        try:
            return dict(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{file} is unreadable: {exc}") from None

    def write_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest and write it atomically."""
        data = {"schema": RUN_SCHEMA, **self.manifest(), **fields,
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(self.path / MANIFEST, data)

    def artifacts(self) -> list[tuple[str, Path]]:
        """(variant, path) of every artifact the manifest lists."""
        return [(a["variant"], self.path / a["path"])
                for a in self.manifest().get("artifacts", [])]


def check_location(path: Path) -> None:
    """Refuse a run location this process cannot create or write (read-only file system,
    permissions, a path under a file), before any work is done; creates nothing."""
    try:
        check_writable(path)
    except OSError as exc:
        raise RunDirError(f"cannot write the run directory {path}: "
                          f"{exc.strerror or first_line(exc)}; choose another --out") from None


def _holds_files(path: Path) -> bool:
    return path.is_dir() and any(entry.name != LOCK_FILE for entry in path.iterdir())


def _owned(entry: Path) -> bool:
    name = entry.name
    if entry.is_dir() and not entry.is_symlink():
        return name in OWNED_FOLDERS
    return (name in OWNED_FILES or is_quantized_file(name)
            or any(fnmatch(name, pattern) for pattern in OWNED_PATTERNS))


def _acquire(path: Path, purpose: str = "use") -> RunLock:
    try:
        return RunLock.acquire(path / LOCK_FILE)
    except BlockingIOError:
        holder = RunLock.holder(path / LOCK_FILE)
        raise RunDirError(f"{path} is in use by another edgevision process "
                          f"({holder or 'pid unknown'}); wait for it to finish (or stop it) "
                          f"before you {purpose} it") from None
    except OSError as exc:
        raise RunDirError(f"cannot lock {path}: {first_line(exc)}") from None
