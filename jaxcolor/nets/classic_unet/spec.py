"""The classic U-Net of the UAN anime-style image coloriser (vrobbin3247/UAN-based-anime-style-
image-coloriser on GitHub): widths, rules, FLOPs and its state_dict layout.

The PyTorch names are that project's own (`encoder1.0.weight`, ..., `final_conv.weight`), so with
norm="none" and num_downs=4 an export loads into its `UNet`. Pure Python.
"""

from __future__ import annotations

from jaxcolor.core.image_size import hw
from jaxcolor.nets import base
from jaxcolor.nets.base import Arch, Entry, conv_entries, norm_entries, uses_bias


def classic_widths(num_downs: int, ngf: int) -> list[int]:
    """Encoder widths ngf * 2**i for i < num_downs, then the bottleneck's ngf * 2**num_downs."""
    return [ngf * 2**i for i in range(num_downs + 1)]


def _double_conv_layout(prefix: str, path: tuple, norm: str) -> list[Entry]:
    """One double conv: Sequential(conv, [norm,] ReLU, conv, [norm,] ReLU), nested as the UAN
    coloriser nests it."""
    step = 2 if norm == "none" else 3  # a norm module sits between each conv and its ReLU
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for j, (conv, nrm) in enumerate((("conv1", "norm1"), ("conv2", "norm2"))):
        entries += conv_entries(f"{prefix}.{j * step}", (*path, conv), bias=bias)
        entries += norm_entries(f"{prefix}.{j * step + 1}", (*path, nrm), norm)
    return entries


def layout(arch: Arch) -> list[Entry]:
    """Every tensor of the classic U-Net under the UAN coloriser's names (encoder1 ... final_conv);
    Flax paths: encoders[i] / bottleneck / upconvs[i] / decoders[i] / final_conv."""
    n, norm = arch["num_downs"], arch["norm"]
    entries: list[Entry] = []
    for i in range(n):
        entries += _double_conv_layout(f"encoder{i + 1}", ("encoders", i), norm)
    entries += _double_conv_layout("bottleneck", ("bottleneck",), norm)
    for i in reversed(range(n)):
        entries += conv_entries(f"upconv{i + 1}", ("upconvs", i), bias=True, kind="conv_transpose")
        entries += _double_conv_layout(f"decoder{i + 1}", ("decoders", i), norm)
    entries += conv_entries("final_conv", ("final_conv",), bias=True)
    return entries


def forward_flops(g: Arch, in_channels: int, size) -> int:
    """2 x MACs of one classic U-Net forward (3x3 double convs, 2x2 s2 up-convs, 1x1 head)."""
    h, w = hw(size)
    widths = classic_widths(g["num_downs"], g["ngf"])
    total = 0
    for i, width in enumerate(widths):  # encoders, then the bottleneck (i == num_downs)
        pixels = (h // 2**i) * (w // 2**i)
        cin = in_channels if i == 0 else widths[i - 1]
        total += pixels * 9 * (cin + width) * width
        if i < g["num_downs"]:
            # the up-conv into level i (4 taps per input pixel) and the decoder double conv
            total += pixels * widths[i + 1] * width + pixels * 9 * (2 * width + width) * width
    return 2 * (total + h * w * widths[0] * g["out_channels"])


def check(config) -> None:
    g = config.model.generator
    base.check_num_downs_multiple(config)
    base.check_fraction(g.dropout, "model.generator.dropout")


CLASSIC_UNET = base.NetworkSpec(
    name="classic_unet",
    role=base.GENERATOR,
    flax="jaxcolor.nets.classic_unet.flax:ClassicUNetGenerator",
    torch="jaxcolor.nets.classic_unet.torch:ClassicUNet",
    layout=layout,
    forward_flops=forward_flops,
    defaults={
        "num_downs": 4,  # 4 max-pools: 64-128-256-512 blocks, 1024 bottleneck
        "ngf": 64,
        "norm": "none",
        "dropout": 0.0,
        "out_channels": 3,
        "upsample_impl": "auto",
    },
    flax_only=("upsample_impl",),
    check=check,
    size_multiple=base.num_downs_multiple,
)
