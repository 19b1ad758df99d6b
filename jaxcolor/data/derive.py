"""The device path (`data.derive = "device"`): sketches and hints made inside the jitted steps.

The host ships the uint8 colour crop, a uint32 `seed` per example and, for hint methods that
rasterise host-sampled geometry, their `hints_sample` (`data/schema.py`). `complete(batch, key,
config)` adds the "sketch" and "hints" arrays the host path would have shipped, with each
example's draw from `fold_in(key, seed)`: the training step passes its own key (so a run's draws
follow its step, and its examples' seeds), evaluation a fixed key (so an image's sketch and hints
are the same at every evaluation and for any batch it falls in). Everything after it (the
generator's inputs, the losses, the metrics, the sample sheets) reads the batch as it reads a
host-path batch.

The device forms are the sketch methods' and hint methods' own (`sketch.device_form`,
`hints.device_form`, in `device_sketch.py` and `device_hints.py`): per example, vmapped here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxcolor.core.errors import ConfigError
from jaxcolor.data import device_sketch, schema
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import sketch as sketch_lib

# Streams folded into the step's key (and evaluation's fixed key) before each example's seed.
DERIVE_STREAM = 0xD371
EVAL_STREAM = 0xE7A1
_SKETCH, _HINTS = 0, 1


def _derives_sketch(config: ml_collections.ConfigDict) -> bool:
    sketch = config.data.sketch
    return sketch != sketch_lib.DATASET_SKETCH and not sketch_lib.is_model_sketch(sketch)


def missing_device_forms(config: ml_collections.ConfigDict) -> list[str]:
    """The `data.sketch` / `data.hints` methods of `config` that have no device form."""
    missing = []
    if _derives_sketch(config):
        names, _ = sketch_lib.parse_sketch_mix(config.data.sketch)
        missing += [f"data.sketch {n!r}" for n in names if sketch_lib.device_form(n) is None]
    spec = hints_lib.hint_spec(config.data.hints)
    if spec.channels and hints_lib.device_form(spec.name) is None:
        missing.append(f"data.hints {spec.name!r}")
    return missing


def check(config: ml_collections.ConfigDict) -> None:
    """ConfigError for a data.derive that is not one of schema.DERIVE, or "device" where a
    method of `config` has no device form."""
    derive = config.data.derive
    if derive not in schema.DERIVE:
        raise ConfigError(f"data.derive must be one of {schema.DERIVE}, got {derive!r}")
    missing = missing_device_forms(config) if derive == schema.DEVICE else []
    if missing:
        raise ConfigError(
            f"data.derive='device', but {', '.join(missing)} has no device form; set "
            "data.derive='host' (or 'auto', which falls back to the host for such methods)."
        )


def resolve(config: ml_collections.ConfigDict, platform: str) -> ml_collections.ConfigDict:
    """`config` with `data.derive` decided for a mesh of `platform` devices: "auto" is the
    device path on accelerators when every method has a device form, else the host path."""
    check(config)
    chosen = schema.resolve_derive(config.data.derive, platform)
    if chosen == schema.DEVICE and missing_device_forms(config):
        chosen = schema.HOST
    if chosen == config.data.derive:
        return config
    config = ml_collections.ConfigDict(config.to_dict())  # a copy: the caller's stays as given
    config.data.derive = chosen
    config.lock()
    return config


def eval_key(config: ml_collections.ConfigDict) -> jax.Array:
    """Evaluation's fixed key: each image's sketch and hints depend on its seed alone."""
    return jax.random.fold_in(jax.random.key(config.seed), EVAL_STREAM)


def complete(batch: dict[str, jax.Array], key: jax.Array, config) -> dict[str, jax.Array]:
    """A device-path batch with its "sketch" and "hints" made (see the module's docstring);
    a host-path batch as it is. Jittable; `key` is a typed PRNG key."""
    if not schema.on_device(config) or schema.SEED not in batch:
        return batch
    batch = dict(batch)
    seeds = batch.pop(schema.SEED)
    sample = batch.pop(schema.HINTS_SAMPLE, None)
    base = jax.random.fold_in(key, DERIVE_STREAM)
    keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(seeds.astype(jnp.uint32))
    color = batch["color"]
    if _derives_sketch(config):
        method, augmented = config.data.sketch, config.data.sketch_augment

        def one_sketch(rgb, k):
            k = jax.random.fold_in(k, _SKETCH)
            return device_sketch.make_sketch(method, rgb, k, augmented=augmented)

        batch["sketch"] = jax.vmap(one_sketch)(color, keys)
    spec = hints_lib.hint_spec(config.data.hints)
    if spec.channels:
        form = hints_lib.device_form(spec.name)
        hint_keys = jax.vmap(lambda k: jax.random.fold_in(k, _HINTS))(keys)
        if sample is None:
            batch["hints"] = jax.vmap(lambda rgb, k: form(rgb, None, k))(color, hint_keys)
        else:
            batch["hints"] = jax.vmap(form)(color, sample, hint_keys)
    return batch
