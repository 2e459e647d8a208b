"""INT8 and FP16 quantization of exported ONNX graphs (the ``quantize`` stage).

ONNX Runtime's quantizer (``quantize_static``, QDQ format) does the work; edgevision chooses
the settings per deployment target, draws and caches the calibration data, measures per-layer
sensitivity and keeps the most sensitive layers in FP32 to meet an accuracy budget. This
package's ``__init__`` imports only the config (no onnxruntime), so recipes load fast.
"""

from edgevision.quantization.config import CalibrationSpec, QuantizeConfig

__all__ = ["CalibrationSpec", "QuantizeConfig"]
