"""An export directory -> its PyTorch networks in eval mode (imports no JAX).

Each network is its family's PyTorch twin (`jaxcolor/nets/<family>/torch.py`), found by the name
in config.json through the registry, with the safetensors weights loaded strictly.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.nets import convert, export_format, registry


def build(net: str, arch: Mapping[str, Any]) -> nn.Module:
    """`net` "generator" | "discriminator" with its config.json section -> an untrained module."""
    return registry.build_torch(net, arch)


def _load_state_dict_file(path: str | pathlib.Path) -> dict[str, torch.Tensor]:
    """safetensors -> state_dict (no pickle involved)."""
    return {k: torch.from_numpy(v) for k, v in convert.load_safetensors(path).items()}


def load(
    model_dir: str | pathlib.Path, net: str = "generator", *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Export directory -> (`net` in eval mode with its weights on `device`, config.json)."""
    cfg = export_format.read_config_json(model_dir)
    arch = cfg[net]
    if arch is None:
        raise ExportError(
            f"{model_dir} holds no {net}; export it with python -m jaxcolor.export "
            "--with_discriminator."
        )
    module = build(net, arch)
    state = _load_state_dict_file(pathlib.Path(model_dir) / arch["file"])
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(
            f"{pathlib.Path(model_dir) / arch['file']} does not fit {net}: {e}"
        ) from e
    return module.to(device).eval(), cfg


def write_initialised(
    config: Mapping[str, Any], out: str | pathlib.Path, *, seed: int = 0
) -> dict[str, Any]:
    """Writes an export of a freshly initialised generator (PyTorch's default init) of the
    training `config` (a plain dict) to `out`: an untrained but complete export, for smoke
    tests and benchmarks of the serving path. Returns its config.json."""
    import json

    from jaxcolor.export import config_json

    cfg = config_json.make_config_json(config, step=0, version="0", with_discriminator=False)
    torch.manual_seed(seed)
    module = build("generator", cfg["generator"]).eval()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    convert.save_safetensors(tensors, out / cfg["generator"]["file"])
    (out / export_format.CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
    return cfg
