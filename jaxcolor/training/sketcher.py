"""`data.sketch = "model:DIR"`: an exported sketch extractor makes the sketches on device.

DIR is a directory written by `python -m jaxcolor.export` for a run with task="sketch" (e.g.
configs/sketch_extractor.py). Its generator weights (safetensors, PyTorch layout) are converted
to Flax once, placed replicated on the mesh and kept frozen: the train and eval steps run the
network in inference mode (running BatchNorm statistics, no dropout) on the colour batch, with no
gradient, and quantise its output to the 256 levels of a uint8 sketch image, so the colorizer
trains on exactly what a saved sketch of that model would give it at inference. The host
pipeline ships no sketch in this mode.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import ml_collections
from flax import nnx

from jaxcolor import parallel
from jaxcolor.core.errors import ConfigError, ExportError
from jaxcolor.core.image_size import describe, image_hw
from jaxcolor.data.sketch import MODEL_SKETCH, is_model_sketch
from jaxcolor.nets import build, convert, export_format
from jaxcolor.nets.inputs import Sketcher

# config.json generator keys that are not constructor options of the network.
_EXPORT_ONLY_KEYS = ("in_channels", "file", "pix2pix_compatible")


def model_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
    """The export directory named by `data.sketch = "model:DIR"`."""
    return pathlib.Path(str(config.data.sketch)[len(MODEL_SKETCH) :]).expanduser()


def read_export(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """config.json of the `data.sketch` export, checked to be a sketch extractor that fits
    `image_size`; raises ConfigError naming data.sketch otherwise."""
    key = f"data.sketch={config.data.sketch!r}"
    path = model_dir(config)
    if not str(path) or str(path) == ".":
        raise ConfigError(
            f"{key}: give the export directory after 'model:', e.g. 'model:/exports/sketcher'."
        )
    if not path.is_dir():
        raise ConfigError(
            f"{key}: {path} does not exist (or is not a directory); give a directory written by "
            "python -m jaxcolor.export for a sketch extractor run (task='sketch', e.g. "
            "configs/sketch_extractor.py)."
        )
    try:
        cfg = export_format.read_config_json(path)
    except ExportError as e:
        raise ConfigError(f"{key}: {e}") from e
    g = cfg["generator"]
    if cfg["task"] != "sketch":
        raise ConfigError(
            f"{key}: {path} is a {cfg['task']!r} export (a colorizer taking "
            f"{g['in_channels']} channels), not a sketch extractor; export a run trained "
            "with task='sketch' (configs/sketch_extractor.py) and point data.sketch at it."
        )
    if g["in_channels"] != export_format.COLOR_CHANNELS or g["out_channels"] != 1:
        raise ConfigError(
            f"{key}: the sketch model in {path} maps {g['in_channels']} -> "
            f"{g['out_channels']} channels; a sketch extractor maps RGB (3) -> sketch (1)."
        )
    multiple = int(cfg["inputs"]["size_multiple"])
    h, w = image_hw(config)
    if h % multiple or w % multiple:
        raise ConfigError(
            f"{key}: the sketch model in {path} needs image sides that are multiples of "
            f"{multiple}, but image_size={describe(config.image_size)}; change image_size "
            f"(e.g. to multiples of {multiple}) or use another sketch model."
        )
    return cfg


def _abstract(config: ml_collections.ConfigDict, arch: dict[str, Any], sharding) -> Sketcher:
    """The extractor's network (its export's config.json `arch`), weights as shapes."""
    options = ml_collections.ConfigDict(
        {k: v for k, v in arch.items() if k not in _EXPORT_ONLY_KEYS}
    )
    model = nnx.eval_shape(
        lambda: build.build_generator(
            options,
            in_channels=arch["in_channels"],
            dtype=config.compute_dtype,
            rngs=nnx.Rngs(0),
            platform=next(iter(sharding.device_set)).platform if sharding is not None else None,
        )
    )
    graph, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return Sketcher(graph, nnx.to_pure_dict(params), nnx.to_pure_dict(stats))


def abstract_sketcher(config: ml_collections.ConfigDict, sharding=None) -> Sketcher | None:
    """`load_sketcher`'s extractor with its weights as shapes (`jax.ShapeDtypeStruct`s placed
    with `sharding`): reads the export's config.json only, for compiling the steps ahead of
    time (bench aot). None for any data.sketch but "model:DIR"."""
    if not is_model_sketch(config.data.sketch):
        return None
    abstract = _abstract(config, read_export(config)["generator"], sharding)
    params, stats = parallel.placed_shapes((abstract.params, abstract.stats), sharding)
    return Sketcher(abstract.graph, params, stats)


def load_sketcher(config: ml_collections.ConfigDict, sharding=None) -> Sketcher | None:
    """The frozen extractor of `data.sketch = "model:DIR"` (None for any other data.sketch),
    its weights placed with `sharding` (e.g. replicated over the mesh)."""
    if not is_model_sketch(config.data.sketch):
        return None
    arch = read_export(config)["generator"]
    abstract = _abstract(config, arch, sharding)
    file = model_dir(config) / arch["file"]
    try:
        tensors = convert.load_safetensors(file)
        params, stats = convert.torch_to_flax("generator", arch, tensors, source=str(file))
        convert.check_shapes(
            "generator", arch, tensors, abstract.params, abstract.stats, source=str(file)
        )
    except ExportError as e:
        raise ConfigError(f"data.sketch={config.data.sketch!r}: {e}") from e
    params, stats = jax.device_put((params, stats), sharding)
    return Sketcher(abstract.graph, params, stats)
