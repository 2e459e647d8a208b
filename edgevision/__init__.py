"""edgevision: compress image-classification CNNs and benchmark them on edge backends.

The Python API mirrors the CLI::

    import edgevision
    recipe = edgevision.load_recipe("recipes/quickstart.yaml", ["train.epochs=1"])
    result = edgevision.compress(recipe, out=Path("runs/quickstart"))
    report = edgevision.benchmark(result.run_dir)
    bundle = edgevision.make_bundle(result.run_dir, Path("bundles/quickstart"),
                                    target="openvino")

Heavy libraries (torch, onnxruntime) are imported only when a function needs them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "compress": ("edgevision.pipeline", "compress"),
    "train": ("edgevision.pipeline", "train_only"),
    "benchmark": ("edgevision.pipeline", "benchmark"),
    "make_bundle": ("edgevision.bundle", "make_bundle"),
    "load_recipe": ("edgevision.recipe", "load_recipe"),
    "list_models": ("edgevision.models.build", "list_models"),
    "build_model": ("edgevision.models.build", "build_model"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attribute = _API[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'edgevision' has no attribute {name!r}")
