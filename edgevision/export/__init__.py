"""Export: PyTorch → ONNX, checked by ``onnx.checker`` and against PyTorch's outputs
(``export.onnx``), and the recipe's ``ExportSpec`` (``export.spec``). Importing the package loads
no torch, so a recipe validates without it."""
