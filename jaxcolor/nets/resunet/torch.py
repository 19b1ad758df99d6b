"""PyTorch (NCHW) residual attention U-Net, the twin of jaxcolor.nets.resunet.flax.

Attribute names mirror the Flax module paths, so the state_dict keys are those of
jaxcolor.nets.resunet.spec.layout.
Imports no JAX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.resunet.spec import resunet_widths
from jaxcolor.nets.torch_layers import norm_layer


class ResBlock(nn.Module):
    """relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x)); 3x3 convs, 1x1 projection."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        bias = uses_bias(norm)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)
        self.norm1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=bias)
        self.norm2 = norm_layer(norm, cout)
        if cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, bias=bias)
            self.proj_norm = norm_layer(norm, cout)
        else:
            self.proj = self.proj_norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        shortcut = x if self.proj is None else self.proj_norm(self.proj(x))
        return F.relu(h + shortcut)


class AttentionGate(nn.Module):
    """x * upsample2x(sigmoid(psi(relu(theta(x) + phi(g))))), g at half x's resolution."""

    def __init__(self, skip: int, gate: int, inter: int):
        super().__init__()
        self.theta = nn.Conv2d(skip, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gate, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.psi(F.relu(self.theta(x) + self.phi(g))))
        alpha = F.interpolate(alpha, scale_factor=2, mode="bilinear", align_corners=False)
        return x * alpha


class ResUNetGenerator(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]; H, W multiples
    of 2**num_downs. forward(x, return_aux=True) -> (image, [aux at 1/2, 1/4, ...])."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 4,
        ngf: int = 64,
        max_mult: int = 16,
        norm: str = "batch",
        num_aux: int = 2,
    ):
        super().__init__()
        if num_downs < 1 or not 0 <= num_aux < num_downs:
            raise ExportError(f"Bad resunet depth: num_downs={num_downs}, num_aux={num_aux}.")
        self.num_downs = num_downs
        widths = resunet_widths(num_downs, ngf, max_mult)
        cins = [in_channels, *widths[:-1]]
        self.encoders = nn.ModuleList(
            [ResBlock(cin, w, norm) for cin, w in zip(cins, widths, strict=True)]
        )
        self.gates = nn.ModuleList(
            [
                AttentionGate(widths[i], widths[i + 1], max(widths[i] // 2, 1))
                for i in range(num_downs)
            ]
        )
        self.decoders = nn.ModuleList(
            [ResBlock(widths[i] + widths[i + 1], widths[i], norm) for i in range(num_downs)]
        )
        self.out = nn.Conv2d(widths[0], out_channels, 1)
        self.aux_heads = nn.ModuleList(
            [nn.Conv2d(widths[k], out_channels, 1) for k in range(1, num_aux + 1)]
        )

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        h, skips = x, []
        for i, block in enumerate(self.encoders):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        u = skips.pop()
        decoded = []
        for i in reversed(range(self.num_downs)):
            skip = self.gates[i](skips.pop(), u)
            u = self.decoders[i](torch.cat([skip, F.interpolate(u, scale_factor=2)], 1))
            decoded.insert(0, u)
        image = torch.tanh(self.out(u))
        if not return_aux:
            return image
        return image, [torch.tanh(head(decoded[k])) for k, head in enumerate(self.aux_heads, 1)]
