"""What an export directory holds: config.json and the pix2pix state_dict layout.

Pure Python (no JAX, no torch), so the exporter, the PyTorch modules and `init_from` share one
table of names. For the pix2pix layout the names are those of pytorch-CycleGAN-and-pix2pix's
`UnetGenerator` (nested `UnetSkipConnectionBlock`s: `model.model.1.model.3...`) and
`NLayerDiscriminator` (`model.N`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from jaxcolor.core.errors import ExportError
from jaxcolor.core.image_size import image_hw, to_json
from jaxcolor.data.hints import HINT_CHANNELS

FORMAT = "jaxcolor-export"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
SKETCH_CHANNELS = 1
COLOR_CHANNELS = 3
NORMS = ("batch", "instance", "none")
# Exportable networks by model.*.name; the generator layout and module dispatch on it.


def uses_bias(norm: str) -> bool:
    """Convs carry a bias unless a BatchNorm follows (same rule as jaxcolor.models.layers)."""
    return norm != "batch"


def unet_widths(num_downs: int, ngf: int) -> list[int]:
    """Encoder width per level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (as jaxcolor.models.unet)."""
    return [ngf * min(2**i, 8) for i in range(num_downs)]


def unet_dropout_levels(num_downs: int, dropout: float) -> range:
    """Levels whose decoder ends in dropout: the num_downs - 5 inner 8*ngf blocks (pix2pix)."""
    return range(4, num_downs - 1) if dropout > 0 else range(0)


def patchgan_widths(ndf: int, n_layers: int) -> list[int]:
    """Width of conv i, i = 0..n_layers (the 1-channel head comes after)."""
    return [ndf * min(2**i, 8) for i in range(n_layers + 1)]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor: its state_dict key, where it lives on the Flax side, and how it converts.

    collection: "params" (nnx.Param), "stats" (nnx.BatchStat) or "torch" (no Flax counterpart:
    BatchNorm's num_batches_tracked). kind: "conv" (HWIO <-> OIHW), "conv_transpose" (HWIO <->
    flipped (in, out, kh, kw)), "linear" ((in, out) <-> (out, in)), "vector" (copied) or "count"
    (int64 scalar).
    """

    key: str
    collection: str
    path: tuple[str | int, ...]
    kind: str


def _conv(prefix: str, path: tuple, *, bias: bool, kind: str = "conv") -> list[Entry]:
    out = [Entry(f"{prefix}.weight", "params", (*path, "kernel"), kind)]
    if bias:
        out.append(Entry(f"{prefix}.bias", "params", (*path, "bias"), "vector"))
    return out


def _norm(prefix: str, path: tuple, norm: str) -> list[Entry]:
    # InstanceNorm2d(affine=False, track_running_stats=False) and Identity hold no tensors.
    if norm != "batch":
        return []
    layer = (*path, "layer")
    return [
        Entry(f"{prefix}.weight", "params", (*layer, "scale"), "vector"),
        Entry(f"{prefix}.bias", "params", (*layer, "bias"), "vector"),
        Entry(f"{prefix}.running_mean", "stats", (*layer, "mean"), "vector"),
        Entry(f"{prefix}.running_var", "stats", (*layer, "var"), "vector"),
        Entry(f"{prefix}.num_batches_tracked", "torch", (), "count"),
    ]


def unet_block_prefix(level: int) -> str:
    """state_dict prefix of U-Net level `level`'s Sequential (0 = outermost)."""
    # Level 0 is `model`; level 1 is item 1 of its Sequential; deeper levels are item 3.
    return "model.model" + ".1.model" * min(level, 1) + ".3.model" * max(level - 1, 0)


def unet_indices(level: int, num_downs: int) -> dict[str, int]:
    """Sequential index of each layer with weights in one pix2pix UnetSkipConnectionBlock."""
    if level == 0:  # [downconv, submodule, relu, upconv, tanh]
        return {"down": 0, "up": 3}
    if level == num_downs - 1:  # [lrelu, downconv, relu, upconv, upnorm]
        return {"down": 1, "up": 3, "up_norm": 4}
    # [lrelu, downconv, downnorm, submodule, relu, upconv, upnorm, (dropout)]
    return {"down": 1, "down_norm": 2, "up": 5, "up_norm": 6}


def generator_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """Every tensor of the U-Net generator, in state_dict order."""
    n, norm = arch["num_downs"], arch["norm"]
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for level in range(n):
        prefix, idx = unet_block_prefix(level), unet_indices(level, n)
        entries += _conv(f"{prefix}.{idx['down']}", ("downs", level), bias=bias)
        if "down_norm" in idx:
            entries += _norm(f"{prefix}.{idx['down_norm']}", ("down_norms", level), norm)
    for level in reversed(range(n)):
        prefix, idx = unet_block_prefix(level), unet_indices(level, n)
        up_bias = bias or level == 0
        entries += _conv(
            f"{prefix}.{idx['up']}", ("ups", level), bias=up_bias, kind="conv_transpose"
        )
        if "up_norm" in idx:
            entries += _norm(f"{prefix}.{idx['up_norm']}", ("up_norms", level), norm)
    return entries


def discriminator_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """Every tensor of the PatchGAN: `model.{0, 2, 5, ...}` convs, `model.{3, 6, ...}` norms."""
    n, norm = arch["n_layers"], arch["norm"]
    entries = _conv("model.0", ("convs", 0), bias=True)
    for i in range(1, n + 1):
        entries += _conv(f"model.{3 * i - 1}", ("convs", i), bias=uses_bias(norm))
        entries += _norm(f"model.{3 * i}", ("norms", i), norm)
    entries += _conv(f"model.{3 * n + 2}", ("head",), bias=True)
    return entries


# ---------------------------------------------------------------------------------------------
# Reference-guided generator and multi-scale discriminator (configs/reference.py). The PyTorch
# modules (jaxcolor.export.torch_reference) name their attributes after the Flax paths.

REFERENCE_STYLE_BLOCKS = 4


def reference_style_widths(style_width: int, style_dim: int) -> list[int]:
    """Style block widths (as jaxcolor.models.reference.style_widths)."""
    blocks = REFERENCE_STYLE_BLOCKS
    return [min(style_width * 2**i, style_dim) for i in range(blocks - 1)] + [style_dim]


def reference_fused_levels(num_downs: int, style_codes: int) -> tuple[int, ...]:
    """AdaIN-modulated decoder levels, outermost first (as jaxcolor.models.reference)."""
    if style_codes == 1:
        return tuple(range(1, num_downs))
    return tuple(range(1, REFERENCE_STYLE_BLOCKS + 1))


def reference_code_index(level: int, style_codes: int) -> int:
    """The style block whose pooled code modulates decoder `level`."""
    return REFERENCE_STYLE_BLOCKS - 1 if style_codes == 1 else level - 1


def reference_generator_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """Every tensor of the reference U-Net: style encoder, U-Net levels, AdaIN projections."""
    n, norm = arch["num_downs"], arch["norm"]
    fused = reference_fused_levels(n, arch["style_codes"])
    entries = _conv("style.stem", ("style", "stem"), bias=True)
    for i in range(REFERENCE_STYLE_BLOCKS):
        for name in ("conv1", "conv2", "shortcut"):
            entries += _conv(f"style.blocks.{i}.{name}", ("style", "blocks", i, name), bias=True)
    for level in range(n):
        entries += _conv(f"downs.{level}", ("downs", level), bias=uses_bias(norm))
        down_norm = norm if 0 < level < n - 1 else "none"
        entries += _norm(f"down_norms.{level}", ("down_norms", level), down_norm)
    for level in reversed(range(n)):
        up_norm = "none" if level == 0 or level in fused else norm
        entries += _conv(
            f"ups.{level}", ("ups", level), bias=uses_bias(up_norm), kind="conv_transpose"
        )
        entries += _norm(f"up_norms.{level}", ("up_norms", level), up_norm)
    for k in range(len(fused)):
        entries += _conv(f"adain.{k}.proj", ("adain", k, "proj"), bias=True, kind="linear")
    return entries


def multiscale_discriminator_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """`scales.{i}.` + one PatchGAN's layout per scale (1x, 1/2, 1/4, ...)."""
    entries = []
    for i in range(arch["num_scales"]):
        for e in discriminator_layout(arch):
            path = ("scales", i, *e.path) if e.path else ()
            entries.append(Entry(f"scales.{i}.{e.key}", e.collection, path, e.kind))
    return entries


def classic_unet_block(prefix: str, path: tuple, norm: str) -> list[Entry]:
    """One double conv: Sequential(conv, [norm,] ReLU, conv, [norm,] ReLU) as the seed nests it."""
    step = 2 if norm == "none" else 3  # a norm module sits between each conv and its ReLU
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for j, (conv, nrm) in enumerate((("conv1", "norm1"), ("conv2", "norm2"))):
        entries += _conv(f"{prefix}.{j * step}", (*path, conv), bias=bias)
        entries += _norm(f"{prefix}.{j * step + 1}", (*path, nrm), norm)
    return entries


def classic_unet_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """Every tensor of the classic U-Net under the scribble seed's names (encoder1 ... final_conv);
    Flax paths: encoders[i] / bottleneck / upconvs[i] / decoders[i] / final_conv."""
    n, norm = arch["num_downs"], arch["norm"]
    entries: list[Entry] = []
    for i in range(n):
        entries += classic_unet_block(f"encoder{i + 1}", ("encoders", i), norm)
    entries += classic_unet_block("bottleneck", ("bottleneck",), norm)
    for i in reversed(range(n)):
        entries += _conv(f"upconv{i + 1}", ("upconvs", i), bias=True, kind="conv_transpose")
        entries += classic_unet_block(f"decoder{i + 1}", ("decoders", i), norm)
    entries += _conv("final_conv", ("final_conv",), bias=True)
    return entries


def resunet_widths(num_downs: int, ngf: int, max_mult: int) -> list[int]:
    """Width of each level 0..num_downs of the residual attention U-Net (as models.resunet)."""
    return [ngf * min(2**i, max_mult) for i in range(num_downs + 1)]


def _resblock(prefix: str, path: tuple, cin: int, cout: int, norm: str) -> list[Entry]:
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for conv_name, norm_name in (("conv1", "norm1"), ("conv2", "norm2")) + (
        (("proj", "proj_norm"),) if cin != cout else ()
    ):
        entries += _conv(f"{prefix}.{conv_name}", (*path, conv_name), bias=bias)
        entries += _norm(f"{prefix}.{norm_name}", (*path, norm_name), norm)
    return entries


def resunet_layout(arch: Mapping[str, Any]) -> list[Entry]:
    """Every tensor of the residual attention U-Net; torch names mirror the Flax paths
    (`encoders.0.conv1.weight` <- encoders/0/conv1/kernel; norms drop Flax's `layer`)."""
    n, norm = arch["num_downs"], arch["norm"]
    widths = resunet_widths(n, arch["ngf"], arch["max_mult"])
    cins = [arch["in_channels"], *widths[:-1]]
    entries: list[Entry] = []
    for i, (cin, w) in enumerate(zip(cins, widths, strict=True)):
        entries += _resblock(f"encoders.{i}", ("encoders", i), cin, w, norm)
    for i in range(n):
        entries += _conv(f"gates.{i}.theta", ("gates", i, "theta"), bias=False)
        entries += _conv(f"gates.{i}.phi", ("gates", i, "phi"), bias=True)
        entries += _conv(f"gates.{i}.psi", ("gates", i, "psi"), bias=True)
        entries += _resblock(
            f"decoders.{i}", ("decoders", i), widths[i] + widths[i + 1], widths[i], norm
        )
    entries += _conv("out", ("out",), bias=True)
    for k in range(arch["num_aux"]):
        entries += _conv(f"aux_heads.{k}", ("aux_heads", k), bias=True)
    return entries


GENERATOR_LAYOUTS = {
    "unet": generator_layout,
    "classic_unet": classic_unet_layout,
    "reference_unet": reference_generator_layout,
    "resunet": resunet_layout,
}
DISCRIMINATOR_LAYOUTS = {
    "patchgan": discriminator_layout,
    "multiscale_patchgan": multiscale_discriminator_layout,
}


def layout(net: str, arch: Mapping[str, Any]) -> list[Entry]:
    """`net` is "generator" or "discriminator"."""
    if net == "generator":
        return GENERATOR_LAYOUTS[arch.get("name", "unet")](arch)
    return DISCRIMINATOR_LAYOUTS[arch.get("name", "patchgan")](arch)


def task(config: Mapping[str, Any]) -> str:
    """`task` of a training config: "colorize" (also for configs from before the key) or
    "sketch"."""
    return config.get("task", "colorize")


def size_multiple(arch: Mapping[str, Any]) -> int:
    """The generator's input sides must be multiples of this (2**num_downs for both U-Nets)."""
    return 2 ** arch["num_downs"]


def architectures(config: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Training config (plain dict) -> {"generator": arch, "discriminator": arch or None}."""
    model = config["model"]
    g, d = dict(model["generator"]), dict(model["discriminator"])
    if g["name"] not in GENERATOR_LAYOUTS or d["name"] not in DISCRIMINATOR_LAYOUTS:
        raise ExportError(
            f"Only the generators {sorted(GENERATOR_LAYOUTS)} and discriminators "
            f"{sorted(DISCRIMINATOR_LAYOUTS)} can be exported; this run "
            f"uses model.generator.name={g['name']!r}, model.discriminator.name={d['name']!r}."
        )
    if task(config) == "sketch":
        in_channels = COLOR_CHANNELS
    else:
        in_channels = SKETCH_CHANNELS + HINT_CHANNELS[config["data"]["hints"]]
    g["in_channels"] = in_channels
    d["in_channels"] = in_channels + g["out_channels"]
    gan = config["loss"]["gan_mode"] != "none"
    return {"generator": g, "discriminator": d if gan else None}


def pix2pix_compatible(net: str, arch: Mapping[str, Any]) -> bool:
    """Whether the weights load into pix2pix's own class with strict=True.

    pix2pix's norm='none' drops the conv biases (its use_bias tests for InstanceNorm only) while
    jaxcolor keeps them, and its UnetGenerator needs num_downs >= 5.
    """
    if arch.get("name", "unet") != "unet" and net == "generator":
        return False  # no pix2pix class has it (the classic U-Net loads into the seed's own)
    if arch["norm"] == "none":
        return False
    if arch.get("name") in ("reference_unet", "multiscale_patchgan"):
        return False  # no pix2pix counterpart
    return net == "discriminator" or arch["num_downs"] >= 5


def make_config_json(
    config: Mapping[str, Any], *, step: int, version: str, with_discriminator: bool
) -> dict[str, Any]:
    """The config.json of an export: architectures, input-channel layout and value ranges."""
    archs = architectures(config)
    hints = config["data"]["hints"]
    hint_channels = HINT_CHANNELS[hints]
    g = archs["generator"]
    h, w = image_hw(config)
    out: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxcolor_version": version,
        "step": step,
        "task": task(config),
        "generator": {
            **g,
            "file": GENERATOR_FILE,
            "pix2pix_compatible": pix2pix_compatible("generator", g),
        },
        "discriminator": None,
        "inputs": {
            # Channel order of the generator input (NCHW): sketch first, then the hints.
            "layout": [
                {"name": "sketch", "channels": SKETCH_CHANNELS, "method": config["data"]["sketch"]},
                {"name": "hints", "channels": hint_channels, "method": hints},
            ],
            "sketch": "grayscale line art, dark lines on white",
            "hints": hints,
            "hint_channels": hint_channels,
            "color_order": "RGB",
            "value_range": [-1.0, 1.0],
            "from_uint8": "x / 127.5 - 1",
            "image_size": to_json(config["image_size"]),
            "image_hw": [h, w],
            "size_multiple": size_multiple(g),
        },
        "output": {
            "channels": g["out_channels"],
            "color_order": "RGB",
            "value_range": [-1.0, 1.0],
            "to_uint8": "round((y + 1) * 127.5)",
        },
        "notes": (
            "BatchNorm running_var holds Flax's running average of the biased batch variance "
            "(PyTorch tracks the unbiased one); eval-mode outputs are identical."
        ),
    }
    if g.get("name") == "resunet":
        out["generator"]["aux_outputs"] = (
            f"generator.safetensors includes the {g['num_aux']} deep-supervision heads "
            "(aux_heads.K: 1x1 conv + tanh at 1/2**(K+1) resolution); forward(x) returns only the "
            "final image, forward(x, return_aux=True) also the aux images."
        )
    if g.get("name") == "reference_unet":
        out["inputs"]["reference"] = {
            "channels": 3,
            "color_order": "RGB",
            "value_range": [-1.0, 1.0],
            "from_uint8": "x / 127.5 - 1",
            "argument": "forward(condition, reference): a second NCHW tensor",
            "image": (
                "a colour image whose colours the output takes; any size >= 16 px (training: "
                "{}x{} views of the target image)".format(*image_hw(config))
            ),
        }
    if task(config) == "sketch":
        out["inputs"] |= {
            # The sketch extractor's input is the colour image; its output the sketch.
            "layout": [{"name": "color", "channels": COLOR_CHANNELS}],
            "color": "RGB colour image",
            "hints": "none",
            "hint_channels": 0,
        }
        del out["inputs"]["sketch"]
        out["output"] |= {
            "content": "sketch: grayscale line art, dark lines on white",
            "color_order": "gray",
            "target_method": config["data"]["sketch"],
        }
    if with_discriminator:
        d = archs["discriminator"]
        if d is None:
            raise ExportError(
                "This run has no discriminator (loss.gan_mode='none'); drop --with-discriminator."
            )
        out["discriminator"] = {
            **d,
            "file": DISCRIMINATOR_FILE,
            "input": "concat(generator input, RGB image) in [-1, 1]",
            "pix2pix_compatible": pix2pix_compatible("discriminator", d),
        }
        if d.get("name") == "multiscale_patchgan":
            out["discriminator"]["output"] = (
                "a list of num_scales logit maps: the input at 1x, then average-pooled (3x3, "
                "stride 2, padding 1, count_include_pad=False) to 1/2, 1/4, ..."
            )
    return out


def read_config_json(model_dir: str | pathlib.Path) -> dict[str, Any]:
    """Reads and checks DIR/config.json of an export."""
    model_dir = pathlib.Path(model_dir)
    path = model_dir / CONFIG_FILE
    if not model_dir.is_dir():
        raise ExportError(f"Model directory {model_dir} does not exist (expected an export).")
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: --model must be a directory written by python -m jaxcolor.export."
        )
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ExportError(f"{path} is not a jaxcolor export config (no format={FORMAT!r}).")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"{path} has format_version {cfg.get('format_version')}; this jaxcolor reads "
            f"version {FORMAT_VERSION}. Re-export with this version."
        )
    return cfg
