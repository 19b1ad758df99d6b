"""The reference-guided colorizer (Liu et al. 2022, Computational Visual Media): style-encoder
AdaIN U-Net and multi-scale PatchGAN.

Widths, config rules, FLOPs and the state_dict layout; the PyTorch twins name their attributes
after the Flax paths. The U-Net and each scale's PatchGAN are pix2pix's. Pure Python.
"""

from __future__ import annotations

from jaxcolor.core.image_size import describe, hw, image_hw
from jaxcolor.nets import base
from jaxcolor.nets.base import Arch, Entry, conv_entries, norm_entries, require, uses_bias
from jaxcolor.nets.pix2pix import spec as pix2pix

STYLE_BLOCKS = 4
STYLE_CODES = (1, 4)


def style_widths(style_width: int, style_dim: int) -> list[int]:
    """Output width of each style block: style_width * 1, 2, 4 (capped at style_dim), style_dim."""
    return [min(style_width * 2**i, style_dim) for i in range(STYLE_BLOCKS - 1)] + [style_dim]


def fused_levels(num_downs: int, style_codes: int) -> tuple[int, ...]:
    """U-Net levels (0 = outermost) whose decoder block is AdaIN-modulated, outermost first.

    One code: every level but the output one. Four codes: levels 1..4, where level k takes the
    code of style block k - 1 (shallow colour features at high resolution, deep ones deeper).
    """
    if style_codes == 1:
        return tuple(range(1, num_downs))
    return tuple(range(1, STYLE_BLOCKS + 1))


def code_index(level: int, style_codes: int) -> int:
    """Which style block's pooled code modulates decoder `level` (see `fused_levels`)."""
    return STYLE_BLOCKS - 1 if style_codes == 1 else level - 1


def generator_layout(arch: Arch) -> list[Entry]:
    """Every tensor of the reference U-Net: style encoder, U-Net levels, AdaIN projections."""
    n, norm = arch["num_downs"], arch["norm"]
    fused = fused_levels(n, arch["style_codes"])
    entries = conv_entries("style.stem", ("style", "stem"), bias=True)
    for i in range(STYLE_BLOCKS):
        for name in ("conv1", "conv2", "shortcut"):
            entries += conv_entries(
                f"style.blocks.{i}.{name}", ("style", "blocks", i, name), bias=True
            )
    for level in range(n):
        entries += conv_entries(f"downs.{level}", ("downs", level), bias=uses_bias(norm))
        down_norm = norm if 0 < level < n - 1 else "none"
        entries += norm_entries(f"down_norms.{level}", ("down_norms", level), down_norm)
    for level in reversed(range(n)):
        up_norm = "none" if level == 0 or level in fused else norm
        entries += conv_entries(
            f"ups.{level}", ("ups", level), bias=uses_bias(up_norm), kind="conv_transpose"
        )
        entries += norm_entries(f"up_norms.{level}", ("up_norms", level), up_norm)
    for k in range(len(fused)):
        entries += conv_entries(f"adain.{k}.proj", ("adain", k, "proj"), bias=True, kind="linear")
    for k in range(arch["num_aux"]):  # multi-scale output heads, last
        entries += conv_entries(f"aux_heads.{k}", ("aux_heads", k), bias=True)
    return entries


def _multiscale_layout(arch: Arch) -> list[Entry]:
    """`scales.{i}.` + one PatchGAN's layout per scale (1x, 1/2, 1/4, ...)."""
    entries: list[Entry] = []
    for i in range(arch["num_scales"]):
        entries += base.prefixed(f"scales.{i}", ("scales", i), pix2pix.patchgan_layout(arch))
    return entries


def _same_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # odd k, p = k // 2 (the style encoder's convs)


def _style_encoder_forward_flops(g: Arch, size) -> int:
    """2 x MACs of the style encoder on one (H, W, 3) reference: the 3x3 stem, 4 ResNet blocks
    (3x3 s2, 3x3, 1x1 s2 shortcut); the pooling is not a conv."""
    h, w = hw(size)
    total = h * w * 9 * 3 * g["style_width"]
    cin = g["style_width"]
    for cout in style_widths(g["style_width"], g["style_dim"]):
        h, w = _same_out(h, 2), _same_out(w, 2)
        total += h * w * (9 * cin * cout + 9 * cout * cout + cin * cout)
        cin = cout
    return 2 * total


def _adain_forward_flops(g: Arch) -> int:
    """2 x MACs of the AdaIN projections (code -> gamma, beta per fused level)."""
    codes = style_widths(g["style_width"], g["style_dim"])
    widths = pix2pix.level_widths(g["num_downs"], g["ngf"])
    return 2 * sum(
        codes[code_index(level, g["style_codes"])] * 2 * widths[level - 1]
        for level in fused_levels(g["num_downs"], g["style_codes"])
    )


def generator_forward_flops(g: Arch, in_channels: int, size) -> int:
    """The pix2pix U-Net, the style encoder on a reference of the training image's size, and
    the AdaIN projections."""
    unet = pix2pix.unet_forward_flops(g, in_channels, size)
    return unet + _style_encoder_forward_flops(g, size) + _adain_forward_flops(g)


def _multiscale_forward_flops(d: Arch, in_channels: int, size) -> int:
    """Each scale's PatchGAN over the input average-pooled (k3 s2 p1) to 1x, 1/2, 1/4, ..."""
    (h, w), total = hw(size), 0
    for _ in range(d["num_scales"]):
        total += pix2pix.patchgan_forward_flops(d, in_channels, (h, w))
        h, w = _same_out(h, 2), _same_out(w, 2)  # flax.downsample's output size
    return total


def _check_generator(config) -> None:
    g = config.model.generator
    base.check_num_downs_multiple(config)
    base.check_fraction(g.dropout, "model.generator.dropout")
    base.check_upsample_impl(g)
    require(
        0 <= g.num_aux < g.num_downs,
        f"model.generator.num_aux (multi-scale outputs) must be in [0, "
        f"model.generator.num_downs - 1 = {g.num_downs - 1}], got {g.num_aux}",
    )
    require(
        g.style_codes in STYLE_CODES,
        f"model.generator.style_codes must be one of {STYLE_CODES}, got {g.style_codes}",
    )
    require(
        g.style_codes == 1 or g.num_downs > STYLE_BLOCKS,
        f"model.generator.style_codes=4 fuses codes into decoder levels 1..4 and needs "
        f"model.generator.num_downs >= {STYLE_BLOCKS + 1}, got {g.num_downs}.",
    )
    require(
        g.style_width >= 1 and g.style_dim >= g.style_width,
        f"model.generator.style_dim ({g.style_dim}) must be >= model.generator.style_width "
        f"({g.style_width}) >= 1.",
    )
    # Four stride-2 blocks: the reference must keep at least one pixel.
    require(
        min(image_hw(config)) >= 2**STYLE_BLOCKS,
        f"image_size={describe(config.image_size)} is too small for the style encoder's "
        f"{STYLE_BLOCKS} stride-2 blocks (needs >= {2**STYLE_BLOCKS}).",
    )


def _check_multiscale(config) -> None:
    pix2pix.check_patchgan(config)  # the full-resolution scale
    d = config.model.discriminator
    require(d.num_scales >= 1, f"model.discriminator.num_scales must be >= 1, got {d.num_scales}")
    min_size = 2 ** (d.num_scales - 1) * 2**d.n_layers * 4
    require(
        min(image_hw(config)) >= min_size,
        f"image_size={describe(config.image_size)} is too small for "
        f"model.discriminator.num_scales={d.num_scales} PatchGANs with n_layers={d.n_layers} "
        f"(the 1/{2 ** (d.num_scales - 1)}"
        f" scale needs >= {min_size}); lower model.discriminator.num_scales or n_layers.",
    )


def _generator_export_notes(arch: Arch, config) -> dict:
    h, w = image_hw(config)
    reference = {
        "channels": 3,
        "color_order": "RGB",
        "value_range": [-1.0, 1.0],
        "from_uint8": "x / 127.5 - 1",
        "argument": "forward(condition, reference): a second NCHW tensor",
        "image": (
            "a colour image whose colours the output takes; any size >= 16 px (training: "
            f"{h}x{w} views of the target image)"
        ),
    }
    notes: dict = {"inputs": {"reference": reference}}
    if arch["num_aux"]:
        notes["generator"] = {
            "aux_outputs": (
                f"generator.safetensors includes the {arch['num_aux']} multi-scale output heads "
                "(aux_heads.K: 1x1 conv + tanh at 1/2**(K+1) resolution); forward(condition, "
                "reference) returns only the final image, forward(condition, reference, "
                "return_aux=True) also the lower-resolution images."
            )
        }
    return notes


def _multiscale_export_notes(arch: Arch, config) -> dict:
    output = (
        "a list of num_scales logit maps: the input at 1x, then average-pooled (3x3, "
        "stride 2, padding 1, count_include_pad=False) to 1/2, 1/4, ..."
    )
    return {"discriminator": {"output": output}}


REFERENCE_UNET = base.NetworkSpec(
    name="reference_unet",
    role=base.GENERATOR,
    flax="jaxcolor.nets.reference.flax:ReferenceUNet",
    torch="jaxcolor.nets.reference.torch:ReferenceUnetGenerator",
    layout=generator_layout,
    forward_flops=generator_forward_flops,
    # The pix2pix U-Net's options, and the style encoder's.
    defaults={
        **pix2pix.UNET.defaults,
        "style_width": 64,  # style blocks 64, 128, 256, 256 wide
        "style_dim": 256,  # the colour style code
        "style_codes": 1,  # 4: one code per style block
        "num_aux": 0,  # multi-scale outputs at 1/2, 1/4, ... resolution
    },
    flax_only=("upsample_impl",),
    check=_check_generator,
    size_multiple=base.num_downs_multiple,
    takes_reference=True,
    num_aux=lambda arch: arch["num_aux"],
    export_notes=_generator_export_notes,
)
MULTISCALE_PATCHGAN = base.NetworkSpec(
    name="multiscale_patchgan",
    role=base.DISCRIMINATOR,
    flax="jaxcolor.nets.reference.flax:MultiScaleDiscriminator",
    torch="jaxcolor.nets.reference.torch:MultiscaleDiscriminator",
    layout=_multiscale_layout,
    forward_flops=_multiscale_forward_flops,
    defaults={"ndf": 64, "n_layers": 3, "norm": "instance", "num_scales": 3},  # 1x, 1/2, 1/4
    check=_check_multiscale,
    export_notes=_multiscale_export_notes,
)
