"""A fresh train state's weights from PyTorch (pix2pix layout) safetensors: `config.init_from`.

A .safetensors generator file or a jaxcolor export directory; the files are read through the
network family's state_dict layout (`nets/convert.py`), so every family starts from its own
exported weights. Only a fresh run starts here: a run that has a checkpoint resumes from it.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from jaxcolor.core.errors import ConfigError, ExportError
from jaxcolor.data.hints import condition_channels
from jaxcolor.nets import convert, export_format

PyTree = Any


def _init_files(init_from: str) -> dict[str, pathlib.Path]:
    """`init_from` -> {"generator": file[, "discriminator": file]}.

    A .safetensors file initialises the generator. A directory (e.g. a jaxcolor export)
    initialises the generator from generator.safetensors and, when present,
    the discriminator from discriminator.safetensors.
    """
    path = pathlib.Path(init_from).expanduser()
    if path.is_dir():
        files = {"generator": path / export_format.GENERATOR_FILE}
        if (path / export_format.DISCRIMINATOR_FILE).is_file():
            files["discriminator"] = path / export_format.DISCRIMINATOR_FILE
        if not files["generator"].is_file():
            raise ConfigError(
                f"init_from={init_from!r}: the directory has no {export_format.GENERATOR_FILE}."
            )
        return files
    if not path.is_file():
        raise ConfigError(
            f"init_from={init_from!r} does not exist; give a .safetensors file (generator "
            "state_dict, pix2pix key names) or a directory written by python -m jaxcolor.export."
        )
    return {"generator": path}


def init_from(state: PyTree, config: ml_collections.ConfigDict) -> PyTree:
    """Replaces the fresh state's weights and BatchNorm statistics (`state.g` / `state.d`, each
    with `params` and `stats`) with `config.init_from`'s.

    Optimizer state is left as created (Adam's moments start at zero whatever the weights); a
    moving average of the generator (`state.ema`, train.ema_decay > 0) starts at the new weights.
    Raises ConfigError naming the file on any key or shape mismatch.
    """
    in_channels = condition_channels(config)
    archs = export_format.network_sections(config.to_dict(), in_channels=in_channels)
    nets = {"generator": state.g, "discriminator": state.d}
    new = {}
    for net, file in _init_files(config.init_from).items():
        old = nets[net]
        if old is None:
            raise ConfigError(
                f"init_from={config.init_from!r} has {file.name} but loss.gan_mode='none' "
                "trains no discriminator; remove that file or use a generator file alone."
            )
        try:
            tensors = convert.load_safetensors(file)
            params, stats = convert.torch_to_flax(net, archs[net], tensors, source=str(file))
            convert.check_shapes(net, archs[net], tensors, old.params, old.stats, source=str(file))
        except ExportError as e:
            raise ConfigError(f"init_from: {e} Match model.* and data.hints to it.") from e
        new[net] = old.replace(params=_place(params, old.params), stats=_place(stats, old.stats))
        if jax.process_index() == 0:
            logging.info("Initialised the %s from %s", net, file)
    jax.block_until_ready(new)
    state = state.replace(g=new.get("generator", state.g), d=new.get("discriminator", state.d))
    if state.ema is not None:  # its own buffers: the step donates both
        state = state.replace(ema=jax.tree.map(jnp.copy, state.g.params))
    return state


def _place(tree: dict, like: PyTree) -> PyTree:
    """numpy tree -> arrays with the dtypes and shardings of `like` (same structure)."""

    def put(path, ref):
        value = tree
        for k in path:
            value = value[k.key]
        return jax.device_put(value.astype(ref.dtype), ref.sharding)

    return jax.tree_util.tree_map_with_path(put, like)
