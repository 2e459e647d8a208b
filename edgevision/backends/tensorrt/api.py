"""The installed TensorRT and its release as constants that the type checks can fix.

``scripts/test`` type-checks this package three times, against the stubs of NVIDIA's real
bindings of 10.3, 10.13 and 11.4, telling mypy each run which of these constants is true
(``--always-true``/``--always-false``). Code that differs between releases branches on them with
plain attribute access (never ``getattr``), so every TensorRT name in every branch is checked
against the release that runs it, and a name a release lacks fails CI.
"""

from __future__ import annotations

import tensorrt as trt

from edgevision.backends.tensorrt.versions import TensorRTRelease, release

INSTALLED: TensorRTRelease = release(str(trt.__version__))
#: TensorRT 11 and later: strong typing only (no FP16/INT8 builder flags, no calibrators)
TRT_11_OR_LATER = INSTALLED.version[0] >= 11
#: TensorRT 10.13 and later: HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
TRT_10_13_OR_LATER = INSTALLED.major_minor >= (10, 13)
