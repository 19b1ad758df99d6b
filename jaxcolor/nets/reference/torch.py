"""PyTorch (NCHW) reference-guided generator and multi-scale discriminator; imports no JAX.

Attribute names mirror the Flax modules of jaxcolor.nets.reference.flax, so state_dict keys are
the Flax paths (see jaxcolor.nets.reference.spec.generator_layout).
"""

from __future__ import annotations

import torch
from torch import nn

from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.pix2pix.spec import dropout_levels, level_widths
from jaxcolor.nets.pix2pix.torch import NLayerDiscriminator
from jaxcolor.nets.reference.spec import code_index, fused_levels, style_widths
from jaxcolor.nets.torch_layers import norm_layer


class ResBlock(nn.Module):
    """conv3x3 s2, ReLU, conv3x3, plus a 1x1 s2 shortcut; ReLU after the sum; no norms."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.shortcut(x))


class StyleEncoder(nn.Module):
    """(B, 3, H, W) reference in [-1, 1] -> one globally pooled code per ResNet block."""

    def __init__(self, style_width: int, style_dim: int):
        super().__init__()
        widths = style_widths(style_width, style_dim)
        self.stem = nn.Conv2d(3, style_width, 3, stride=1, padding=1)
        cins = [style_width, *widths[:-1]]
        self.blocks = nn.ModuleList(ResBlock(a, b) for a, b in zip(cins, widths, strict=True))

    def forward(self, reference: torch.Tensor) -> list[torch.Tensor]:
        h = torch.relu(self.stem(reference))
        codes = []
        for block in self.blocks:
            h = block(h)
            codes.append(h.mean(dim=(2, 3)))
        return codes


class AdaIN(nn.Module):
    """InstanceNorm2d (no affine), then x * (1 + gamma(code)) + beta(code) per channel."""

    def __init__(self, code_dim: int, features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(features, eps=1e-5, affine=False, track_running_stats=False)
        self.proj = nn.Linear(code_dim, 2 * features)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(code).chunk(2, dim=1)
        return self.norm(x) * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class ReferenceUnetGenerator(nn.Module):
    """forward(condition (B, in_channels, H, W), reference (B, 3, H', W')), both in [-1, 1] ->
    (B, out_channels, H, W) in [-1, 1]; H, W multiples of 2**num_downs, H', W' >= 16."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        style_width: int = 64,
        style_dim: int = 256,
        style_codes: int = 1,
        num_aux: int = 0,
    ):
        super().__init__()
        widths = level_widths(num_downs, ngf)
        codes = style_widths(style_width, style_dim)
        self.num_downs, self.style_codes = num_downs, style_codes
        self.fused = fused_levels(num_downs, style_codes)
        self.dropout_levels = set(dropout_levels(num_downs)) if dropout > 0 else set()
        inner = num_downs - 1
        self.style = StyleEncoder(style_width, style_dim)
        self.downs, self.down_norms = nn.ModuleList(), nn.ModuleList()
        self.ups, self.up_norms = nn.ModuleList(), nn.ModuleList()
        for i, width in enumerate(widths):
            cin = in_channels if i == 0 else widths[i - 1]
            self.downs.append(nn.Conv2d(cin, width, 4, stride=2, padding=1, bias=uses_bias(norm)))
            self.down_norms.append(norm_layer(norm if 0 < i < inner else "none", width))
            up_in = width if i == inner else 2 * width
            up_out = out_channels if i == 0 else widths[i - 1]
            up_norm = "none" if i == 0 or i in self.fused else norm
            self.ups.append(
                nn.ConvTranspose2d(up_in, up_out, 4, stride=2, padding=1, bias=uses_bias(up_norm))
            )
            self.up_norms.append(norm_layer(up_norm, up_out))
        self.adain = nn.ModuleList(
            AdaIN(codes[code_index(level, style_codes)], widths[level - 1]) for level in self.fused
        )
        self.dropout = nn.Dropout(dropout)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(2 * widths[k - 1], out_channels, 1) for k in range(1, num_aux + 1)
        )

    def forward(self, x: torch.Tensor, reference: torch.Tensor, return_aux: bool = False):
        """The image, or with return_aux (image, [aux at 1/2, ..., 1/2**num_aux])."""
        codes = self.style(reference)
        adain = dict(zip(self.fused, self.adain, strict=True))
        skips = []
        h = x
        for i in range(self.num_downs):
            if i > 0:
                h = nn.functional.leaky_relu(h, 0.2)
            h = self.down_norms[i](self.downs[i](h))
            skips.append(h)
        u = skips.pop()
        aux = {}
        for i in reversed(range(self.num_downs)):
            u = self.up_norms[i](self.ups[i](torch.relu(u)))
            if i in adain:
                u = adain[i](u, codes[code_index(i, self.style_codes)])
            if i in self.dropout_levels:
                u = self.dropout(u)
            if i > 0:
                u = torch.cat([skips.pop(), u], 1)
            if return_aux and 1 <= i <= len(self.aux_heads):
                aux[i] = torch.tanh(self.aux_heads[i - 1](torch.relu(u)))
        image = torch.tanh(u)
        if not return_aux:
            return image
        return image, [aux[k] for k in range(1, len(self.aux_heads) + 1)]


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale D: (B, C, H, W) -> [logits at 1x, 1/2, 1/4, ...]."""

    def __init__(
        self,
        *,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        num_scales: int = 3,
    ):
        super().__init__()
        self.scales = nn.ModuleList(
            NLayerDiscriminator(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm)
            for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = []
        for i, d in enumerate(self.scales):
            if i > 0:
                x = self.downsample(x)
            logits.append(d(x))
        return logits
