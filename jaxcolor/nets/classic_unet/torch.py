"""PyTorch (NCHW) classic U-Net, the twin of jaxcolor.nets.classic_unet.flax; imports no JAX.

Written as the UAN anime-style image coloriser (vrobbin3247/UAN-based-anime-style-image-
coloriser on GitHub) writes its `UNet` (module names encoder1..N, pool, bottleneck,
upconvN..1, decoderN..1, final_conv; `conv_block` = Sequential(conv, ReLU, conv, ReLU)), so with
norm="none" and num_downs=4 its state_dict is that project's, key for key.
"""

from __future__ import annotations

import torch
from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.classic_unet.spec import classic_widths
from jaxcolor.nets.torch_layers import norm_layer


def conv_block(cin: int, cout: int, norm: str) -> nn.Sequential:
    """Double 3x3 conv + ReLU; with a norm, conv -> norm -> ReLU twice (milesial's DoubleConv)."""
    bias = uses_bias(norm)
    layers: list[nn.Module] = []
    for c_in in (cin, cout):
        layers.append(nn.Conv2d(c_in, cout, kernel_size=3, padding=1, bias=bias))
        if norm != "none":
            layers.append(norm_layer(norm, cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ClassicUNet(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]; H, W multiples
    of 2**num_downs. Dropout (if any) on the deepest encoder output and the bottleneck output."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 4,
        ngf: int = 64,
        norm: str = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_downs < 1:
            raise ExportError(f"num_downs must be >= 1, got {num_downs}")
        self.num_downs = num_downs
        widths = classic_widths(num_downs, ngf)
        for i in range(num_downs):
            cin = in_channels if i == 0 else widths[i - 1]
            setattr(self, f"encoder{i + 1}", conv_block(cin, widths[i], norm))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(widths[-2], widths[-1], norm)
        for i in reversed(range(num_downs)):
            up = nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2)
            setattr(self, f"upconv{i + 1}", up)
            setattr(self, f"decoder{i + 1}", conv_block(2 * widths[i], widths[i], norm))
        self.final_conv = nn.Conv2d(widths[0], out_channels, kernel_size=1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i in range(self.num_downs):
            h = getattr(self, f"encoder{i + 1}")(h)
            if i == self.num_downs - 1:
                h = self.dropout(h)
            skips.append(h)
            h = self.pool(h)
        h = self.dropout(self.bottleneck(h))
        for i in reversed(range(self.num_downs)):
            up = getattr(self, f"upconv{i + 1}")(h)
            h = getattr(self, f"decoder{i + 1}")(torch.cat([up, skips[i]], dim=1))
        return torch.tanh(self.final_conv(h))
