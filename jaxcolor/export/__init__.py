"""Export to PyTorch: Orbax checkpoint -> safetensors + config.json -> PyTorch modules.

Nothing here imports JAX at package import time: `jaxcolor.export.torch_models` and
`jaxcolor.colorize` run where only PyTorch is installed.
"""

FORMATS = ("safetensors", "torchscript", "onnx")
