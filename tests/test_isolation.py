"""The CLI module stays light: no torch, onnxruntime or TensorRT at import."""

from __future__ import annotations

import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout
    return set(output.split())


def test_cli_import_is_light() -> None:
    loaded = modules_after("import edgevision.cli")
    assert not {"torch", "torchvision", "onnxruntime", "tensorrt", "matplotlib"} & loaded


def test_recipe_validation_is_torch_free() -> None:
    loaded = modules_after("import edgevision.recipe as r; r.load_recipe('quickstart')")
    assert "torch" not in loaded and "tensorrt" not in loaded


def test_recipe_with_prune_and_distill_validates_without_torch() -> None:
    loaded = modules_after("import edgevision.recipe as r; "
                           "r.load_recipe('resnet56-cifar10-prune')")
    assert "torch" not in loaded and "torch_pruning" not in loaded


def test_help_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "edgevision", "--help"], capture_output=True,
                            text=True, check=True)
    assert "compress" in result.stdout and "benchmark" in result.stdout


def test_recipe_with_quantize_validates_without_onnxruntime() -> None:
    loaded = modules_after("from edgevision.recipe.load import validate_recipe; "
                           "validate_recipe({'name': 'q', 'model': {'name': 'resnet18'}, "
                           "'data': {'root': 'x'}, 'stages': [{'kind': 'quantize'}]})")
    assert not {"torch", "onnxruntime"} & loaded


def test_compress_without_the_compress_extra_says_what_to_install() -> None:
    code = ("import sys\nsys.modules['torch'] = None\nfrom edgevision.cli import main\n"
            "sys.argv = ['edgevision', 'compress', 'quickstart']\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "compress needs torch, which is not installed: pip install 'edgevision[compress]'" \
        in result.stderr


def test_every_lazily_exported_name_resolves() -> None:
    """Names loaded by a package's ``__getattr__`` point at modules that exist (lint-imports
    and mypy cannot see module paths held in strings)."""
    import edgevision
    import edgevision.distillation
    import edgevision.pruning

    exported = {edgevision: list(edgevision._API),
                edgevision.pruning: list(edgevision.pruning._LAZY),
                edgevision.distillation: list(edgevision.distillation._LAZY)}
    for package, names in exported.items():
        for name in names:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
