"""The batch schema: which arrays a batch holds for a config, with their shapes and dtypes.

One declaration read by the Grain transform (`pipeline.MakeExample` ships exactly these keys),
the benchmark's synthetic batches, the shapes the steps are compiled for ahead of time, and the
tests. Images are uint8 (batch, height, width, channels):

- "color": the RGB image (the target; for task="sketch" the condition);
- "sketch": 1 channel; shipped on the host path (`data.derive = "host"`) and for the real
  sketches of data.sketch = "dataset"; absent with data.sketch = "model:DIR" (a sketch model makes
  it on device) and on the device path, where the step derives it (`data/derive.py`);
- "hints": `HINT_CHANNELS[data.hints]` channels on the host path, absent with "none" and on the
  device path;
- "reference": RGB, for reference-guided generators only.

The device path also ships, per example, "seed" (uint32: the example's draw, so each example's
sketch and hints are a function of it, as the host path's are of the example's rng) and, for hint
methods whose device form rasterises host-sampled geometry (points, strokes, scribbles),
"hints_sample" (int32, the method's `sample_shape`).

Host batches also carry "skipped" (`SKIPPED`, int32 per example), which the pipeline's consumers
pop before a batch reaches a device (`pipeline.pop_skipped`). Pure numpy: no JAX here.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import image_hw
from jaxcolor.data.hints import hint_spec
from jaxcolor.data.sketch import DATASET_SKETCH, is_model_sketch
from jaxcolor.nets import registry

DTYPE = np.dtype(np.uint8)  # every image array
SKIPPED = "skipped"  # host only: unusable files passed over to reach each example
SEED = "seed"  # device path: the example's draw for its sketch and hints
HINTS_SAMPLE = "hints_sample"  # device path: host-sampled hint geometry (points, strokes)

# data.derive: where sketches and hints are made from the colour crop.
HOST, DEVICE, AUTO = "host", "device", "auto"
DERIVE = (AUTO, HOST, DEVICE)


def resolve_derive(derive: str, platform: str) -> str:
    """`data.derive` -> HOST or DEVICE for a mesh of `platform` devices ("cpu", "tpu", "gpu"):
    "auto" derives on the accelerator, and on the host when the mesh's devices are CPUs (there
    the step would take the host's cores anyway)."""
    if derive not in DERIVE:
        raise ConfigError(f"data.derive must be one of {DERIVE}, got {derive!r}")
    if derive == AUTO:
        return HOST if platform == "cpu" else DEVICE
    return derive


def on_device(config: ml_collections.ConfigDict) -> bool:
    """Whether `config`'s batches take the device path. A run decides "auto" from its mesh
    first (`derive.resolve`, in training/builder.py); the pipeline used alone, without a mesh
    (tests, notebooks, `bench data`), reads an undecided "auto" as the host path."""
    return config.data.derive == DEVICE


def channels(*, sketch: str, hints: str, reference: bool, device: bool = False) -> dict[str, int]:
    """Image key -> channels of one example for data.sketch `sketch`, data.hints `hints`, a
    generator that does (`reference`) or does not take a reference image, and the host or
    device (`device`) path."""
    out = {"color": 3}
    # A sketch model makes it on device from the colours; so does the device path, except for
    # a dataset's own sketches.
    if not is_model_sketch(sketch) and (sketch == DATASET_SKETCH or not device):
        out["sketch"] = 1
    n = hint_spec(hints).channels
    if n and not device:  # "none": no array at all (a zero-channel one cannot cross
        out["hints"] = n  # Grain's worker boundary)
    if reference:
        out["reference"] = 3
    return out


def fields(
    *, sketch: str, hints: str, reference: bool, device: bool, hw: tuple[int, int]
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Key -> (per-example shape, dtype) of one example (see `channels` for the images)."""
    out = {
        k: ((*hw, c), DTYPE)
        for k, c in channels(sketch=sketch, hints=hints, reference=reference, device=device).items()
    }
    if device:
        out[SEED] = ((), np.dtype(np.uint32))
        spec = hint_spec(hints)
        if spec.sample_shape is not None:
            out[HINTS_SAMPLE] = (tuple(spec.sample_shape), np.dtype(np.int32))
    return out


def config_fields(config: ml_collections.ConfigDict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """`fields` of `config`'s examples (data.derive resolved)."""
    return fields(
        sketch=config.data.sketch,
        hints=config.data.hints,
        reference=registry.generator(config.model.generator).takes_reference,
        device=on_device(config),
        hw=image_hw(config),
    )


def shapes(
    config: ml_collections.ConfigDict, batch_size: int | None = None
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Key -> (shape, dtype) of a batch of `batch_size` (default config.batch_size) examples."""
    n = batch_size or config.batch_size
    return {k: ((n, *shape), dtype) for k, (shape, dtype) in config_fields(config).items()}


def synthetic(
    config: ml_collections.ConfigDict,
    batch_size: int | None = None,
    *,
    processes: int = 1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random host arrays for one of `processes` processes: its rows of a batch of `batch_size`
    (default config.batch_size), by `shapes`. A "hints_sample" is a real draw of the method's
    sampler on the random colours, so the device path rasterises plausible geometry."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, (shape, dtype) in shapes(config, batch_size).items():
        shape = (shape[0] // processes, *shape[1:])
        if k == HINTS_SAMPLE:
            sample = hint_spec(config.data.hints).sample
            out[k] = np.stack([sample(image, rng) for image in out["color"]])
        else:
            out[k] = rng.integers(0, int(np.iinfo(dtype).max) + 1, shape, dtype=dtype)
    return out
