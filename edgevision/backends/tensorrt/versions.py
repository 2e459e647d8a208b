"""The TensorRT versions edgevision builds for, and what each one has — decided without TensorRT.

Three releases are supported, one per platform our users have:

* 10.3 — JetPack 6 on Jetson Orin (CUDA 12.6, Python 3.10);
* 10.13 — JetPack 7.0 on Jetson Thor (CUDA 13, Python 3.12);
* 11.4 — desktops (``pip install tensorrt``, CUDA 13) and JetPack 7.2.2+.

Other 10.x/11.x releases are placed by their number: a feature counts as present only from the
first supported release known to have it (checked against NVIDIA's real Python bindings of each
release in CI: ``tests/test_tensorrt_bindings.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgevision.errors import EdgevisionError

#: oldest and first unsupported major.minor
OLDEST = (10, 3)
FIRST_UNSUPPORTED = (12, 0)


class TensorRTVersionError(EdgevisionError):
    """A TensorRT version edgevision does not build for."""


@dataclass(frozen=True)
class TensorRTRelease:
    """What one TensorRT release offers the builder (names as in ``tensorrt``'s Python API)."""

    version: tuple[int, ...]
    #: the devices that have it (for messages)
    devices: str

    @property
    def label(self) -> str:
        return ".".join(str(v) for v in self.version)

    @property
    def major_minor(self) -> tuple[int, int]:
        return self.version[0], self.version[1] if len(self.version) > 1 else 0

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def weak_typing(self) -> bool:
        """BuilderFlag.FP16/INT8 exist, so strong typing must be asked for
        (NetworkDefinitionCreationFlag.STRONGLY_TYPED, trtexec --stronglyTyped); removed in
        11.0, where every network is strongly typed and the flag is ignored."""
        return self.major < 11

    @property
    def same_compute_capability(self) -> bool:
        """HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY exists (not in 10.3)."""
        return self.major_minor >= (10, 13)


#: the releases we check against NVIDIA's real bindings, by the name users give them
SUPPORTED: dict[str, TensorRTRelease] = {
    "10.3": TensorRTRelease((10, 3, 0), "JetPack 6 on Jetson Orin"),
    "10.13": TensorRTRelease((10, 13, 3, 9), "JetPack 7.0 on Jetson Thor"),
    "11.4": TensorRTRelease((11, 4, 0, 106), "desktops and JetPack 7.2.2+"),
}

#: the release a build plan targets when neither TensorRT nor a chosen version is at hand
DEFAULT_TARGET = "11.4"


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` → ``(10, 3, 0, 26)``; ``"v100300"`` (trtexec's banner) → ``(10, 3, 0)``."""
    packed = re.fullmatch(r"v?(\d{2})(\d{2})(\d{2})", text.strip())
    if packed:
        return tuple(int(part) for part in packed.groups())
    if not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        raise TensorRTVersionError(f"not a TensorRT version: {text!r} (expected e.g. 10.3 or "
                                   "11.4.0.106)")
    return tuple(int(part) for part in text.strip().split("."))


def release(version: str) -> TensorRTRelease:
    """The release ``version`` names: a supported name (``10.3``, ``10.13``, ``11.4``) or an
    installed version's full number; refused (one line, with the supported ones) outside
    10.3 ≤ version < 12."""
    numbers = parse_version(version)
    named = SUPPORTED.get(".".join(str(v) for v in numbers[:2]))
    if named is not None and len(numbers) <= 2:
        return named
    if not OLDEST <= (*numbers, 0)[:2] < FIRST_UNSUPPORTED:
        raise TensorRTVersionError(f"TensorRT {version} is not supported{_closest(numbers)}: "
                                   f"edgevision builds for TensorRT 10.3 to 11.x ({_listed()})")
    return TensorRTRelease(numbers, named.devices if named is not None else "installed")


def supported_release(name: str) -> TensorRTRelease:
    """A release a user targets (``--tensorrt-version``, ``engine.tensorrt_version``): one of
    ``SUPPORTED`` (or a full version of one, e.g. 10.3.0.26); anything else is refused."""
    numbers = parse_version(name)
    key = ".".join(str(v) for v in numbers[:2])
    if key not in SUPPORTED:
        raise TensorRTVersionError(f"unknown target TensorRT {name}{_closest(numbers)}: choose "
                                   f"{_listed()}")
    return SUPPORTED[key] if len(numbers) <= 2 else TensorRTRelease(numbers,
                                                                     SUPPORTED[key].devices)


def _closest(numbers: tuple[int, ...]) -> str:
    """`` (did you mean 10.3?)``: the supported release of the same major nearest in minor."""
    same_major = [r for r in SUPPORTED.values() if r.major == numbers[0]]
    if not same_major:
        return ""
    minor = (*numbers, 0)[1]
    nearest = min(same_major, key=lambda r: abs(r.major_minor[1] - minor))
    return f" (did you mean {nearest.major}.{nearest.major_minor[1]}?)"


def _listed() -> str:
    return ", ".join(f"{name} ({r.devices})" for name, r in SUPPORTED.items())


def installed_version() -> str | None:
    """The version of the ``tensorrt`` module installed here, or None without one (its
    libraries missing count as none)."""
    try:
        import tensorrt
    except (ImportError, OSError):
        return None
    return str(tensorrt.__version__)
