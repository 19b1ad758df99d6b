"""Frozen VGG-19 features (torchvision's `vgg19().features`) in Flax NNX, for the perceptual and
style losses (`loss.perceptual_weight`, `loss.style_weight`, `loss.vgg_layers`).

The weights are never downloaded: `load_vgg(config, sharding)` reads the file the user names in
`loss.vgg_weights`, torchvision's ImageNet `vgg19-dcbb9e9d.pth` (read without torch and without
running pickle code, see jaxcolor/weights_file.py) or the same tensors as `.safetensors`/`.npz`.
Loading is strict: every `features.N.weight`/`.bias` of VGG-19 with its shape, nothing unknown
(the classifier's `classifier.*` tensors are ignored). Only the convolutions up to the deepest
layer in `loss.vgg_layers` are built and placed on the devices.

Layers are named as in the style-transfer literature: `reluB_J` (`convB_J` before its ReLU) is
the J-th convolution of block B; torchvision's `features.0` is conv1_1, `features.28` conv5_1.
Images in [-1, 1] are mapped to [0, 1] and normalised with the ImageNet mean and std, as
torchvision's weights expect.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jaxcolor import parallel
from jaxcolor.core.errors import ConfigError
from jaxcolor.nets.inputs import frozen_network
from jaxcolor.nets.layers import compute_dtype
from jaxcolor.weights_file import SUFFIXES, WeightsFileError, read_state_dict

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/" + VGG19_FILE
DEFAULT_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG-19 ("E"): conv widths per block, each block ending in a 2x2 max pool.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512,) * 4, (512,) * 4)


def _conv_table() -> list[tuple[str, int, int, int]]:
    """(name "B_J", torchvision features index, in channels, out channels) per convolution."""
    table, index, cin = [], 0, 3
    for b, widths in enumerate(_BLOCKS, 1):
        for j, cout in enumerate(widths, 1):
            table.append((f"{b}_{j}", index, cin, cout))
            index, cin = index + 2, cout  # conv, ReLU
        index += 1  # max pool
    return table


CONVS = _conv_table()
LAYER_NAMES = tuple(f"{kind}{name}" for name, *_ in CONVS for kind in ("conv", "relu"))


def _weights_hint() -> str:
    return (
        f"give torchvision's ImageNet VGG-19 weights, {VGG19_FILE} ({VGG19_URL}; nothing is "
        f"downloaded), or the same tensors as .safetensors or .npz"
    )


def parse_layers(value: str | Sequence[str]) -> tuple[str, ...]:
    """`loss.vgg_layers` ("relu1_1,relu2_1" or a sequence) -> layer names; ConfigError naming
    the key for an unknown or empty one."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(n).strip() for n in names if str(n).strip())
    if not names:
        raise ConfigError(f"loss.vgg_layers is empty; give e.g. {DEFAULT_LAYERS!r}.")
    unknown = [n for n in names if n not in LAYER_NAMES]
    if unknown:
        raise ConfigError(
            f"loss.vgg_layers: unknown VGG-19 layer(s) {', '.join(unknown)}; use reluB_J or "
            f"convB_J with blocks B=1..5 (J=1..2 in blocks 1-2, 1..4 in 3-5), e.g. "
            f"{DEFAULT_LAYERS!r}."
        )
    return names


def pools_before(layers: Sequence[str]) -> int:
    """How many 2x2 max pools the input goes through before the deepest of `layers`."""
    return max(int(n[4]) for n in layers) - 1  # "reluB_J" / "convB_J": B is the 5th character


class VGG19Features(nnx.Module):
    """(B, H, W, 3) images in [-1, 1] -> the feature maps of `layers`, in that order.

    Built only up to the deepest layer asked for; `convs[k]` is torchvision's
    `features.{torch_index[k]}`. Inference only (VGG has no normalisation or dropout here).
    """

    def __init__(self, layers: Sequence[str], *, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.layers = tuple(layers)
        depth = max(LAYER_NAMES.index(n) // 2 for n in self.layers) + 1
        self.names = tuple(name for name, *_ in CONVS[:depth])
        self.torch_index = tuple(index for _, index, *_ in CONVS[:depth])
        self.dtype = dtype
        self.convs = nnx.List(
            [
                nnx.Conv(cin, cout, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, rngs=rngs)
                for _, _, cin, cout in CONVS[:depth]
            ]
        )

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
        std = jnp.asarray(IMAGENET_STD, jnp.float32)
        h = (((x.astype(jnp.float32) + 1.0) * 0.5 - mean) / std).astype(self.dtype)
        out: dict[str, jax.Array] = {}
        for k, (name, conv) in enumerate(zip(self.names, self.convs, strict=True)):
            if k > 0 and name.endswith("_1"):  # a new block starts after a 2x2 max pool
                h = nnx.max_pool(h, (2, 2), strides=(2, 2))
            h = conv(h)
            out[f"conv{name}"] = h
            h = nnx.relu(h)
            out[f"relu{name}"] = h
        return [out[n] for n in self.layers]


@frozen_network
@dataclasses.dataclass(frozen=True)
class FrozenVGG:
    """The VGG-19 features the steps run: graph definition (static) and weights (device arrays,
    or their shapes)."""

    graph: nnx.GraphDef
    params: Any

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        """Feature maps of `x`; no gradient flows into the weights (it does into `x`)."""
        model = nnx.merge(self.graph, jax.lax.stop_gradient(self.params))
        return model(x)


def forward_flops(layers: Sequence[str], size: tuple[int, int]) -> int:
    """2 x MACs of one VGG19Features(layers) forward on an (H, W) image."""
    h, w = size
    depth = max(LAYER_NAMES.index(n) // 2 for n in layers) + 1
    total = 0
    for k, (name, _, cin, cout) in enumerate(CONVS[:depth]):
        if k > 0 and name.endswith("_1"):
            h, w = h // 2, w // 2
        total += h * w * 9 * cin * cout
    return 2 * total


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """torch key -> torch shape for every tensor of VGG-19's `features`."""
    shapes = {}
    for _, index, cin, cout in CONVS:
        shapes[f"features.{index}.weight"] = (cout, cin, 3, 3)
        shapes[f"features.{index}.bias"] = (cout,)
    return shapes


def _listing(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check_state_dict(tensors: dict[str, np.ndarray], source: str) -> None:
    """Strict: all of VGG-19's feature tensors with their shapes, nothing unknown but
    `classifier.*`; ConfigError naming `loss.vgg_weights`, the file and the keys otherwise."""
    expected = expected_shapes()
    used = {k for k in tensors if not k.startswith("classifier.")}
    problems = []
    if missing := sorted(set(expected) - used):
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected := sorted(used - set(expected)):
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong := sorted(
        f"{k} {tuple(tensors[k].shape)} (expected {expected[k]})"
        for k in set(expected) & used
        if tuple(tensors[k].shape) != expected[k]
    ):
        problems.append(f"wrong shapes: {_listing(wrong)}")
    if problems:
        raise ConfigError(
            f"loss.vgg_weights={source} is not VGG-19: {'; '.join(problems)}; {_weights_hint()}."
        )


def _abstract(layers: Sequence[str], dtype: Any) -> tuple[VGG19Features, nnx.GraphDef, Any]:
    model = nnx.eval_shape(lambda: VGG19Features(layers, dtype=dtype, rngs=nnx.Rngs(0)))
    graph, abstract = nnx.split(model, nnx.Param)
    return model, graph, nnx.to_pure_dict(abstract)


def from_state_dict(
    tensors: dict[str, np.ndarray], layers: Sequence[str], *, dtype: Any, source: str
) -> tuple[nnx.GraphDef, Any]:
    """torchvision VGG-19 state_dict (numpy, OIHW) -> (graph, params) up to `layers`; strict."""
    _check_state_dict(tensors, source)
    model, graph, params = _abstract(layers, dtype)
    for k, index in enumerate(model.torch_index):
        weight = tensors[f"features.{index}.weight"]
        params["convs"][k] = {
            "kernel": np.ascontiguousarray(weight.transpose(2, 3, 1, 0), np.float32),  # HWIO
            "bias": np.asarray(tensors[f"features.{index}.bias"], np.float32),
        }
    return graph, params


def perceptual_weights(config: ml_collections.ConfigDict) -> tuple[float, float]:
    """(loss.perceptual_weight, loss.style_weight), 0 where the config has none."""
    loss = config.loss
    return float(loss.perceptual_weight), float(loss.style_weight)


def uses_vgg(config: ml_collections.ConfigDict) -> bool:
    return any(w != 0 for w in perceptual_weights(config))


def check_weights_file(config: ml_collections.ConfigDict) -> pathlib.Path:
    """`loss.vgg_weights` exists and has a known suffix (the contents are checked on load)."""
    perceptual, style = perceptual_weights(config)
    raw = str(config.loss.vgg_weights or "")
    need = f"loss.perceptual_weight={perceptual:g} and loss.style_weight={style:g} need"
    if not raw:
        raise ConfigError(f"{need} VGG-19 weights: set loss.vgg_weights=PATH; {_weights_hint()}.")
    path = pathlib.Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"loss.vgg_weights={raw} does not exist; {_weights_hint()}.")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(
            f"loss.vgg_weights={raw}: unknown file type {path.suffix!r} (use one of "
            f"{', '.join(SUFFIXES)}); {_weights_hint()}."
        )
    return path


def load_vgg(config: ml_collections.ConfigDict, sharding=None) -> FrozenVGG | None:
    """The frozen VGG-19 of the perceptual/style losses (None when both weights are 0), its
    weights read from `loss.vgg_weights` and placed with `sharding` (e.g. replicated)."""
    if not uses_vgg(config):
        return None
    path = check_weights_file(config)
    try:
        tensors = read_state_dict(path)
    except WeightsFileError as e:
        raise ConfigError(f"loss.vgg_weights: {e}; {_weights_hint()}.") from e
    layers = parse_layers(config.loss.vgg_layers)
    graph, params = from_state_dict(
        tensors,
        layers,
        dtype=compute_dtype(config.compute_dtype),
        source=str(config.loss.vgg_weights),
    )
    return FrozenVGG(graph, jax.device_put(params, sharding))


def abstract_vgg(config: ml_collections.ConfigDict, sharding=None) -> FrozenVGG | None:
    """`load_vgg`'s network with its weights as shapes (`jax.ShapeDtypeStruct`s placed with
    `sharding`), read from no file: for compiling the steps ahead of time (bench aot)."""
    if not uses_vgg(config):
        return None
    layers = parse_layers(config.loss.vgg_layers)
    _, graph, params = _abstract(layers, compute_dtype(config.compute_dtype))
    return FrozenVGG(graph, parallel.placed_shapes(params, sharding))
