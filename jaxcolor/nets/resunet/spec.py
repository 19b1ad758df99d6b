"""The residual attention U-Net with deep supervision (Chen et al. 2019): widths, rules,
FLOPs, layout.

PyTorch names mirror the Flax paths (`encoders.0.conv1.weight` <- encoders/0/conv1/kernel; norms
drop Flax's `layer`). Pure Python.
"""

from __future__ import annotations

from jaxcolor.core.image_size import hw
from jaxcolor.nets import base
from jaxcolor.nets.base import Arch, Entry, conv_entries, norm_entries, require, uses_bias


def resunet_widths(num_downs: int, ngf: int, max_mult: int) -> list[int]:
    """Width of each level 0..num_downs (the last is the bottleneck)."""
    return [ngf * min(2**i, max_mult) for i in range(num_downs + 1)]


def _resblock(prefix: str, path: tuple, cin: int, cout: int, norm: str) -> list[Entry]:
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for conv_name, norm_name in (("conv1", "norm1"), ("conv2", "norm2")) + (
        (("proj", "proj_norm"),) if cin != cout else ()
    ):
        entries += conv_entries(f"{prefix}.{conv_name}", (*path, conv_name), bias=bias)
        entries += norm_entries(f"{prefix}.{norm_name}", (*path, norm_name), norm)
    return entries


def layout(arch: Arch) -> list[Entry]:
    """Every tensor of the residual attention U-Net, the deep-supervision heads last."""
    n, norm = arch["num_downs"], arch["norm"]
    widths = resunet_widths(n, arch["ngf"], arch["max_mult"])
    cins = [arch["in_channels"], *widths[:-1]]
    entries: list[Entry] = []
    for i, (cin, w) in enumerate(zip(cins, widths, strict=True)):
        entries += _resblock(f"encoders.{i}", ("encoders", i), cin, w, norm)
    for i in range(n):
        entries += conv_entries(f"gates.{i}.theta", ("gates", i, "theta"), bias=False)
        entries += conv_entries(f"gates.{i}.phi", ("gates", i, "phi"), bias=True)
        entries += conv_entries(f"gates.{i}.psi", ("gates", i, "psi"), bias=True)
        entries += _resblock(
            f"decoders.{i}", ("decoders", i), widths[i] + widths[i + 1], widths[i], norm
        )
    entries += conv_entries("out", ("out",), bias=True)
    for k in range(arch["num_aux"]):
        entries += conv_entries(f"aux_heads.{k}", ("aux_heads", k), bias=True)
    return entries


def forward_flops(g: Arch, in_channels: int, size) -> int:
    """2 x MACs of one residual attention U-Net forward (3x3 residual blocks with 1x1
    projections, attention gates; the deep-supervision heads, used only in training, left out)."""
    h, w = hw(size)
    widths = resunet_widths(g["num_downs"], g["ngf"], g["max_mult"])
    pixels = [(h // 2**i) * (w // 2**i) for i in range(g["num_downs"] + 1)]

    def block(cin: int, cout: int) -> int:  # per pixel
        return 9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)

    total = 0
    for i, width in enumerate(widths):
        total += pixels[i] * block(in_channels if i == 0 else widths[i - 1], width)
        if i < g["num_downs"]:
            inter = max(width // 2, 1)
            gate = 4 * width * inter + widths[i + 1] * inter + inter  # theta, phi, psi
            total += pixels[i + 1] * gate + pixels[i] * block(width + widths[i + 1], width)
    return 2 * (total + pixels[0] * widths[0] * g["out_channels"])


def check(config) -> None:
    g = config.model.generator
    base.check_num_downs_multiple(config)
    require(
        0 <= g.num_aux < g.num_downs,
        f"model.generator.num_aux must be in [0, model.generator.num_downs - 1 = "
        f"{g.num_downs - 1}], got {g.num_aux}",
    )


def export_notes(arch: Arch, config) -> dict:
    return {
        "generator": {
            "aux_outputs": (
                f"generator.safetensors includes the {arch['num_aux']} deep-supervision heads "
                "(aux_heads.K: 1x1 conv + tanh at 1/2**(K+1) resolution); forward(x) returns only "
                "the final image, forward(x, return_aux=True) also the aux images."
            )
        }
    }


RESUNET = base.NetworkSpec(
    name="resunet",
    role=base.GENERATOR,
    flax="jaxcolor.nets.resunet.flax:ResUNetGenerator",
    torch="jaxcolor.nets.resunet.torch:ResUNetGenerator",
    layout=layout,
    forward_flops=forward_flops,
    defaults={
        "num_downs": 4,  # 512 px -> 32 x 32
        "ngf": 64,
        "max_mult": 16,  # widths ngf * min(2**level, max_mult): 64 ... 1024
        "norm": "batch",
        "num_aux": 2,  # deep-supervision heads at 1/2 and 1/4 resolution
        "out_channels": 3,
    },
    check=check,
    size_multiple=base.num_downs_multiple,
    num_aux=lambda arch: arch["num_aux"],
    export_notes=export_notes,
)
