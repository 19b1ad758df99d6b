"""PyTorch (NCHW) twins of the pix2pix U-Net and PatchGAN, built from an export's config.json.

Module nesting follows pytorch-CycleGAN-and-pix2pix, so state_dict keys and shapes are those of
its `UnetGenerator` / `NLayerDiscriminator` (see jaxcolor.nets.pix2pix.spec). Imports no JAX.
"""

from __future__ import annotations

import torch
from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.pix2pix.spec import dropout_levels, level_widths, patchgan_widths
from jaxcolor.nets.torch_layers import norm_layer


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
    ):
        super().__init__()
        if num_downs < 2:
            raise ExportError(f"num_downs must be >= 2, got {num_downs}")
        widths = level_widths(num_downs, ngf)
        bias = uses_bias(norm)
        drop = set(dropout_levels(num_downs)) if dropout > 0 else set()
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

    def __init__(self, *, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        widths = patchgan_widths(ndf, n_layers)
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
                    bias=uses_bias(norm),
                ),
                norm_layer(norm, widths[i]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
