"""Which file of a run a bundle ships, for which target: the variant (the search's choice, else
the run's final one), the target (the runtime it was measured or chosen on, else onnxruntime)
and whether that target can run it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevision.bundle.schema import TARGETS, Target
from edgevision.errors import EdgevisionError
from edgevision.rundir import RunDir

#: the bundle target that runs what each edgevision backend measured (onnxruntime-openvino: a
#: backend since removed, named in searches made with it)
BACKEND_TARGETS: dict[str, Target] = {"onnxruntime": "onnxruntime", "openvino": "openvino",
                                      "onnxruntime-openvino": "openvino",
                                      "tensorrt": "tensorrt"}
SEARCH_SCHEMA = "edgevision.search/1"


class BundleError(EdgevisionError):
    """A bundle cannot be made as asked (no finished model, unknown variant or target...)."""


@dataclass(frozen=True)
class Variant:
    """One model file of the run a bundle can ship: its variant name, path (relative to the
    run) and, for a search candidate measured on a backend, that backend."""

    name: str
    path: str
    backend: str | None = None
    #: the search report's row name (``<level>/<precision>[@<backend>]``), for a search run
    row: str | None = None

    @property
    def is_engine(self) -> bool:
        return self.path.endswith((".engine", ".plan"))


@dataclass(frozen=True)
class Selection:
    """The variant and target a bundle is made of, and why (for the log)."""

    variant: Variant
    target: Target
    reason: str


def select(run: RunDir, variant: str | None, target: str | None) -> Selection:
    """The variant and target to bundle (see the module docstring); one-line errors for a run
    without a finished model, a variant or target it does not have."""
    if target is not None and target not in TARGETS:
        raise BundleError(f"unknown target {target!r}: choose {', '.join(TARGETS)}")
    if run.status() == "running":
        raise BundleError(f"{run.path} is still running (run.json); bundle it once it is done")
    files = model_files(run)
    if not files:
        raise BundleError(f"{run.path} has no finished model (run.json lists no ONNX file or "
                          f"engine that exists; status {run.status()}): finish the run first "
                          "(compress --resume)")
    chosen = search_choice(run)
    if variant is not None:
        picked, why = find_variant(run, files, variant), "--variant"
    elif chosen is not None:
        picked, why = find_variant(run, files, chosen), "the search's choice"
    else:
        picked, why = final_variant(files, target), "the run's final variant"
    wanted: Target = target if target is not None else default_target(run, picked)  # type: ignore[assignment]
    return Selection(picked, wanted, why)


def model_files(run: RunDir) -> list[Variant]:
    """The ONNX files and engines the manifest lists that exist, in the order made."""
    return [Variant(str(a["variant"]), str(a["path"]))
            for a in run.manifest().get("artifacts", [])
            if str(a.get("path", "")).endswith((".onnx", ".engine", ".plan"))
            and (run.path / str(a["path"])).is_file()]


def search_report(run: RunDir) -> dict[str, Any] | None:
    """The run's search report (``report.json`` of schema edgevision.search/1), or None."""
    data = read_json(run.path / "report.json")
    return data if data and data.get("schema") == SEARCH_SCHEMA else None


def search_choice(run: RunDir) -> str | None:
    """The search's chosen row name (``<level>/<precision>[@<backend>]``), or None."""
    report = search_report(run)
    return None if report is None else report.get("choice", {}).get("chosen")


def find_variant(run: RunDir, files: list[Variant], name: str) -> Variant:
    """The file named ``name`` (a manifest variant, or a search row ``variant@backend``)."""
    base, _, backend = name.partition("@")
    matches = [f for f in files if f.name == base]
    if not matches:
        names = ", ".join(dict.fromkeys(f.name for f in files))
        raise BundleError(f"{run.path} has no variant {name!r} (it has: {names})")
    found = matches[-1]
    report = search_report(run)
    row: dict[str, Any] | None = None
    if report is not None:  # a search row: its backend (the target's rows carry no @)
        rows = {r.get("name"): r for r in report.get("rows", [])}
        row = rows.get(name)
        if row is None and backend:
            raise BundleError(f"the search measured no {name!r} (rows: "
                              f"{', '.join(str(n) for n in rows)})")
        backend = str(row["backend"]) if row else backend
    return Variant(found.name, found.path, backend or None, name if row is not None else None)


def final_variant(files: list[Variant], target: str | None) -> Variant:
    """The last model file the run made that ``target`` takes (engines only for tensorrt)."""
    usable = [f for f in files if target == "tensorrt" or not f.is_engine]
    if not usable:
        raise BundleError(f"the run has no ONNX file for target {target} (only engines: "
                          f"{', '.join(f.path for f in files)})")
    return usable[-1]


def default_target(run: RunDir, variant: Variant) -> Target:
    """tensorrt for an engine; else the runtime the variant was chosen or measured on (the
    first of the run's reports' backends that has a target), else onnxruntime."""
    if variant.is_engine:
        return "tensorrt"
    if variant.backend in BACKEND_TARGETS:
        return BACKEND_TARGETS[variant.backend]
    for report in reports(run):
        for row in report.get("rows", []):
            if (row.get("variant") == variant.name and not row.get("error")
                    and Path(str(row.get("artifact"))).name == Path(variant.path).name
                    and row.get("backend") in BACKEND_TARGETS):
                return BACKEND_TARGETS[row["backend"]]
    return "onnxruntime"


def reports(run: RunDir) -> list[dict[str, Any]]:
    """The run's benchmark reports (its own, then ``benchmark/``'s), newest first."""
    found = [r for r in (read_json(run.path / "report.json"),
                         read_json(run.path / "benchmark" / "report.json"))
             if r and str(r.get("schema", "")).startswith("edgevision.report/")]
    return sorted(found, key=lambda r: str(r.get("created", "")), reverse=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
