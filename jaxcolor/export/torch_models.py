"""PyTorch (NCHW) versions of the generator and discriminator, built from an export's config.json.

Module nesting follows pytorch-CycleGAN-and-pix2pix, so state_dict keys and shapes are those of
its `UnetGenerator` / `NLayerDiscriminator` (see jaxcolor.export.spec). Imports no JAX.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.export import convert, spec


def norm_layer(norm: str, channels: int) -> nn.Module:
    """pix2pix's norms: BatchNorm2d, InstanceNorm2d(affine=False, no running stats), Identity."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, eps=1e-5, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ExportError(f"Unknown norm {norm!r}; expected one of {spec.NORMS}.")


def _down(cin: int, cout: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=bias)


def _up(cin: int, cout: int, bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=bias)


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down, (the deeper levels), up; concatenates its input unless outermost."""

    def __init__(self, layers: list[nn.Module], *, outermost: bool):
        super().__init__()
        self.outermost = outermost
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]; H, W multiples
    of 2**num_downs."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        **_: Any,
    ):
        super().__init__()
        if num_downs < 2:
            raise ExportError(f"num_downs must be >= 2, got {num_downs}")
        widths = spec.unet_widths(num_downs, ngf)
        bias = spec.uses_bias(norm)
        drop = set(spec.unet_dropout_levels(num_downs, dropout))
        inner = num_downs - 1

        block = None
        for level in reversed(range(num_downs)):
            width = widths[level]
            if level == 0:
                layers = [
                    _down(in_channels, width, bias),
                    block,
                    nn.ReLU(),
                    _up(2 * width, out_channels, True),
                    nn.Tanh(),
                ]
            elif level == inner:
                outer = widths[level - 1]
                layers = [
                    nn.LeakyReLU(0.2),
                    _down(outer, width, bias),
                    nn.ReLU(),
                    _up(width, outer, bias),
                    norm_layer(norm, outer),
                ]
            else:
                outer = widths[level - 1]
                layers = [
                    nn.LeakyReLU(0.2),
                    _down(outer, width, bias),
                    norm_layer(norm, width),
                    block,
                    nn.ReLU(),
                    _up(2 * width, outer, bias),
                    norm_layer(norm, outer),
                ]
                if level in drop:
                    layers.append(nn.Dropout(dropout))
            block = UnetSkipConnectionBlock(layers, outermost=level == 0)
        self.model = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: (B, in_channels, H, W) -> (B, 1, H', W') raw logits."""

    def __init__(
        self, *, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", **_: Any
    ):
        super().__init__()
        widths = spec.patchgan_widths(ndf, n_layers)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(
                    widths[i - 1],
                    widths[i],
                    kernel_size=4,
                    stride=stride,
                    padding=1,
                    bias=spec.uses_bias(norm),
                ),
                norm_layer(norm, widths[i]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build(net: str, arch: Mapping[str, Any]) -> nn.Module:
    """`net` "generator" | "discriminator" with its config.json section -> an untrained module."""
    if arch.get("name") in ("reference_unet", "multiscale_patchgan"):
        from jaxcolor.export import torch_reference  # it imports this module

        return torch_reference.build(net, arch)
    if net == "generator":
        name = arch.get("name", "unet")
        if name == "classic_unet":
            from jaxcolor.export.torch_classic_unet import ClassicUNet

            return ClassicUNet(**arch)
        if name == "resunet":
            from jaxcolor.export.torch_resunet import ResUNetGenerator

            return ResUNetGenerator(**arch)
        if name != "unet":
            known = ", ".join(spec.GENERATOR_LAYOUTS)
            raise ExportError(f"Unknown generator {name!r}; this jaxcolor has {known}.")
        return UnetGenerator(**arch)
    if arch.get("name", "patchgan") != "patchgan":
        raise ExportError(f"Unknown discriminator {arch['name']!r}; this jaxcolor has 'patchgan'.")
    return NLayerDiscriminator(**arch)


def load_state_dict_file(path: str | pathlib.Path) -> dict[str, torch.Tensor]:
    """safetensors -> state_dict (no pickle involved)."""
    return {k: torch.from_numpy(v) for k, v in convert.load_safetensors(path).items()}


def load(
    model_dir: str | pathlib.Path, net: str = "generator", *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Export directory -> (`net` in eval mode with its weights on `device`, config.json)."""
    cfg = spec.read_config_json(model_dir)
    arch = cfg.get(net)
    if arch is None:
        raise ExportError(
            f"{model_dir} holds no {net}; export it with python -m jaxcolor.export "
            "--with-discriminator."
        )
    module = build(net, arch)
    state = load_state_dict_file(pathlib.Path(model_dir) / arch["file"])
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(
            f"{pathlib.Path(model_dir) / arch['file']} does not fit {net}: {e}"
        ) from e
    return module.to(device).eval(), cfg
