"""NVIDIA's real TensorRT Python bindings of each supported release against what edgevision
assumes each release has.

``scripts/prepare-tensorrt`` (run by ``scripts/test``) unpacks the real ``tensorrt_bindings``
module of 10.3, 10.13 and 11.4 into ``.cache/tensorrt/<V>`` with stand-in libraries, so it imports
here without TensorRT or a GPU: every class, method and enum member is there to read, nothing runs.
Without them these tests skip, saying so, except under CI=true, where they fail.
``real_tensorrt_names(version_name)`` is the set of names one release has, for any test to use.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgevision.backends.tensorrt.versions import SUPPORTED, release
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
BINDINGS = REPO / ".cache" / "tensorrt"
STUBS = REPO / ".cache" / "tensorrt-stubs"

#: prints the module's version and its public names: functions and constants, classes, each
#: class's attributes (methods, properties, enum members; inherited ones too) as "Class.name",
#: and those of classes nested in it as "Class.Nested.name"
NAMES_PROBE = """
import inspect, json
import tensorrt_bindings as trt

def public(names):
    return [name for name in names if not name.startswith("_")]

def class_names(prefix, cls):
    names = []
    for name in public(dir(cls)):
        names.append(f"{prefix}.{name}")
        member = inspect.getattr_static(cls, name)
        if inspect.isclass(member) and member.__qualname__.endswith(f"{cls.__name__}.{name}"):
            names += class_names(f"{prefix}.{name}", member)
    return names

names = []
for name in public(dir(trt)):
    names.append(name)
    value = getattr(trt, name)
    if inspect.isclass(value):
        names += class_names(name, value)
print(json.dumps({"version": trt.__version__, "names": names}))
"""

#: what the real bindings have, per release (../shared/notes/tensorrt-real-bindings.md)
RELEASE_FACTS: dict[str, dict[str, bool]] = {
    "BuilderFlag.FP16": {"10.3": True, "10.13": True, "11.4": False},
    "BuilderFlag.INT8": {"10.3": True, "10.13": True, "11.4": False},
    "BuilderFlag.BF16": {"10.3": True, "10.13": True, "11.4": False},
    "BuilderFlag.FP8": {"10.3": True, "10.13": True, "11.4": False},
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": {"10.3": True, "10.13": True, "11.4": True},
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": {"10.3": True, "10.13": True, "11.4": False},
    "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY": {"10.3": False, "10.13": True,
                                                           "11.4": True},
    "Builder.platform_has_fast_fp16": {"10.3": True, "10.13": True, "11.4": False},
    "Builder.platform_has_fast_int8": {"10.3": True, "10.13": True, "11.4": False},
}


def _require(path: Path, what: str) -> Path:
    """``path``; when missing, fail under CI=true, else skip saying how to make it."""
    return require(path, what, "run scripts/prepare-tensorrt")


def _prepared(label: str) -> Path:
    """``.cache/tensorrt/<label>``, which holds the real bindings (skip or fail without)."""
    return _require(BINDINGS / label / "tensorrt_bindings", f"TensorRT {label}'s real bindings"
                    ).parent


@functools.cache
def _probe(label: str) -> dict[str, Any]:
    folder = BINDINGS / label
    env = {**os.environ, "LD_LIBRARY_PATH": str(folder / "fakelib"), "PYTHONPATH": str(folder)}
    result = subprocess.run([sys.executable, "-c", NAMES_PROBE], env=env, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"TensorRT {label}'s bindings do not import: "
                           f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout)


def real_tensorrt_names(version_name: str) -> frozenset[str]:
    """The dotted names NVIDIA's real ``tensorrt`` module of release ``version_name`` (a key of
    ``versions.SUPPORTED``, e.g. ``"11.4"``) has: ``"init_libnvinfer_plugins"``,
    ``"IBuilderConfig.clear_flag"``, ``"BuilderFlag.FP16"``, ``"ILogger.Severity.WARNING"``, ...
    Read once per session, in a subprocess. Skips, or fails under CI=true, without the prepared
    bindings."""
    label = release(version_name).label
    _prepared(label)
    return frozenset(_probe(label)["names"])


@pytest.fixture(scope="session", params=sorted(SUPPORTED))
def version_name(request: pytest.FixtureRequest) -> str:
    """Each supported release's name (``10.13``, ``10.3``, ``11.4``)."""
    return str(request.param)


def test_the_prepared_bindings_are_the_supported_release(version_name: str) -> None:
    label = release(version_name).label
    _prepared(label)
    assert _probe(label)["version"] == label


def test_names_cover_functions_methods_and_enum_members(version_name: str) -> None:
    """The probe sees every kind of name code uses, so an absent name means the release lacks
    it."""
    names = real_tensorrt_names(version_name)
    assert {"init_libnvinfer_plugins", "Builder", "Builder.create_network",
            "IBuilderConfig.set_flag", "IBuilderConfig.clear_flag",
            "IBuilderConfig.hardware_compatibility_level", "BuilderFlag.TF32",
            "ILogger.Severity.WARNING", "OnnxParser.parse_from_file"} <= names


@pytest.mark.parametrize("name", sorted(RELEASE_FACTS))
def test_the_real_bindings_have_what_the_notes_say(version_name: str, name: str) -> None:
    assert (name in real_tensorrt_names(version_name)) is RELEASE_FACTS[name][version_name]


def test_release_properties_match_the_real_bindings(version_name: str) -> None:
    names = real_tensorrt_names(version_name)
    properties = release(version_name)
    assert properties.weak_typing is ("BuilderFlag.FP16" in names)
    assert properties.weak_typing is ("BuilderFlag.INT8" in names)
    assert properties.same_compute_capability is (
        "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY" in names)
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" in names  # asked for where needed


def test_the_type_stubs_have_every_real_enum_member(version_name: str) -> None:
    """The stubs mypy checks against (scripts/prepare-tensorrt) lose no enum member of the real
    module: mypy's verdict on a flag is the real release's."""
    names = real_tensorrt_names(version_name)
    label = release(version_name).label
    stub = _require(STUBS / label / "tensorrt" / "tensorrt.pyi", f"TensorRT {label}'s stubs")
    text = stub.read_text(encoding="utf-8")
    for enum in ("BuilderFlag", "NetworkDefinitionCreationFlag", "HardwareCompatibilityLevel",
                 "DataType", "MemoryPoolType", "DeviceType", "TacticSource"):
        members = {name.split(".")[1] for name in names
                   if name.startswith(f"{enum}.") and name.split(".")[1].isupper()}
        declared = _class_level_names(text, enum)
        assert members and members <= declared, (enum, sorted(members - declared))


def _class_level_names(text: str, class_name: str) -> set[str]:
    """Names declared at the top of ``class_name``'s body in a stub file."""
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {item.target.id for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    return set()


def _plans(version_name: str) -> list[Any]:
    """A build plan of every precision and option this release can build."""
    from edgevision.backends.tensorrt.plan import PRECISION_GRAPHS, plan_build
    from edgevision.backends.tensorrt.spec import EngineSpec
    from edgevision.backends.tensorrt.versions import supported_release

    target = supported_release(version_name)
    options: list[dict[str, Any]] = [
        {}, {"version_compatible": True, "sparsity": True},
        {"hardware_compatibility": "ampere_plus"},
        {"dla_core": 0, "min_batch": 1, "max_batch": 1}]
    if target.same_compute_capability:
        options.append({"hardware_compatibility": "same_compute_capability"})
    plans = []
    for precision in PRECISION_GRAPHS:
        for extra in options:
            if "dla_core" in extra and precision != "fp16":
                continue  # refused at planning (tests/test_tensorrt.py)
            spec = EngineSpec.model_validate({"precisions": [precision], **extra})
            plans.append(plan_build(Path("m.onnx"), Path("m.engine"), precision, spec, "input",
                                    (3, 32, 32), target))
    return plans


def test_every_name_each_build_plan_uses_exists_in_its_release(version_name: str) -> None:
    """The precisions and options of the build plan, for this release, need only names the
    release's real module has: e.g. no BuilderFlag.FP16 on 11.x, no SAME_COMPUTE_CAPABILITY on
    10.3, the STRONGLY_TYPED flag where 10.x must be asked."""
    real = real_tensorrt_names(version_name)
    for plan in _plans(version_name):
        missing = [name for name in plan.required_api() if name not in real]
        assert missing == [], (plan.precision, plan.typing, plan.flags, missing)
    weak = [p for p in _plans(version_name) if p.typing == "weak"]
    assert bool(weak) == (version_name != "11.4")  # DLA on 10.x only
    assert all("BuilderFlag.FP16" in p.required_api() for p in weak)
