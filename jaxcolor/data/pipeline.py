"""Grain pipelines: colour image -> {color, sketch, hints} uint8 batches, one shard per process."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import cv2
import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from absl.flags import UnparsedFlagAccessError
from grain._src.core import profiler as grain_profiler

from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import hw, image_hw
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import schema, sources
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.data.crop import CROP_MARGIN, crop_resize
from jaxcolor.nets import registry

# The built-in data.source prefixes (evaluate --source and bench name them).
SYNTHETIC = "synthetic"
FOLDER = "folder:"
TFDS = "tfds:"
# Validation split names tried in order for TFDS datasets.
TFDS_VAL_SPLITS = ("validation", "val", "test")
# Training references (reference-guided models): a crop of 60-90 % of the short side, so even
# an image already at image_size is zoomed, never the target's own framing.
REFERENCE_CROP = (0.6, 0.9)


def _training_reference_view(image: np.ndarray, size, rng: np.random.Generator) -> np.ndarray:
    """A training reference: another random square crop (side REFERENCE_CROP of the short side)
    of the colour image, resized to the training size (int or (h, w)) and flipped at random.

    The colours are left alone (they are what the model must transfer); the different crop,
    scale and flip keep the target's pixels from lining up with the reference's.
    """
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * rng.uniform(*REFERENCE_CROP)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image[y : y + side, x : x + side]
    th, tw = hw(size)
    interp = cv2.INTER_AREA if side > max(th, tw) else cv2.INTER_LINEAR
    view = cv2.resize(crop, (tw, th), interpolation=interp)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(view)


def _tfds_val_split(builder) -> str | None:
    """The split validation reads: the first of TFDS_VAL_SPLITS the dataset has."""
    return next((s for s in TFDS_VAL_SPLITS if s in builder.info.splits), None)


def _tfds_sources(config: ml_collections.ConfigDict, name: str):
    builder = sources.tfds_builder(name, config.data.data_dir or None)
    train = sources.TfdsSource(name, "train", builder=builder)
    val_split = _tfds_val_split(builder)
    if val_split is None:
        logging.warning(
            "TFDS dataset %r has no validation split (%s); validating on its train split.",
            name,
            "/".join(TFDS_VAL_SPLITS),
        )
        return train, train
    return train, sources.TfdsSource(name, val_split, builder=builder)


def _folder_sources(config: ml_collections.ConfigDict, directory: str):
    folder = sources.ImageFolderSource(directory)
    train, val = folder.split(config.data.val_fraction, seed=config.seed)
    if not len(val):
        logging.warning("data.val_fraction=0: validating on the training images.")
        val = train
    return train, val


def _synthetic_sources(config: ml_collections.ConfigDict, arg: str):
    del arg
    train = sources.SyntheticCartoonSource(
        config.data.num_synthetic, image_hw(config), seed=config.seed
    )
    # Disjoint images: the validation set is drawn with another seed; data.val_fraction of
    # the training set's size, and at least the fixed evaluation batch.
    num_val = max(
        config.eval_batch_size, round(config.data.num_synthetic * config.data.val_fraction), 1
    )
    val = sources.SyntheticCartoonSource(num_val, image_hw(config), seed=config.seed + 1_000_003)
    return train, val


def _folder_held_out(directory: str, data_dir: str | None, split: str | None):
    del data_dir, split  # every image of the folder, recursively
    return sources.ImageFolderSource(directory)


def _tfds_held_out(name: str, data_dir: str | None, split: str | None):
    builder = sources.tfds_builder(name, data_dir)
    split = split or _tfds_val_split(builder) or "train"
    return sources.TfdsSource(name, split, builder=builder)


# ---------------------------------------------------------------------------------------------
# The `data.source` forms: one SourceSpec each, the only place a form is matched. make_sources,
# held_out_source and the messages ask the table; `register()` adds a form (e.g. from a test).


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One form of `data.source`: the bare `name` (takes_argument=False) or `name:ARG`.

    - splits: `(config, ARG) -> (train, val)` Grain random-access sources (`__len__`,
      `__getitem__`); encoded ones yield what `sources.DecodedSource` decodes (bytes and a
      possible sketch, data/decode.py), the others decoded RGB uint8 images.
    - encoded: whether the sources hold encoded files (decoded, size-checked and skipped when
      unusable by DecodedSource), or images ready to crop.
    - real_sketches: whether it can hold real sketches (data.sketch='dataset').
    - paired_layout: whether data.layout='paired' (colour | sketch side by side) applies.
    - held_out: `(ARG, data_dir, split) -> encoded source` for `evaluate --source`; None: not
      offered there.
    - usage: how a user writes it, for messages.
    """

    name: str
    splits: Callable[[ml_collections.ConfigDict, str], tuple]
    usage: str
    takes_argument: bool = True
    encoded: bool = True
    real_sketches: bool = True
    paired_layout: bool = False
    held_out: Callable[[str, str | None, str | None], object] | None = None


_SOURCES: dict[str, SourceSpec] = {}


def register(spec: SourceSpec) -> None:
    """Adds a `data.source` form."""
    if spec.name in _SOURCES and _SOURCES[spec.name] != spec:
        raise ValueError(f"data.source form {spec.name!r} is already registered")
    _SOURCES[spec.name] = spec


def unregister(spec: SourceSpec) -> None:
    if _SOURCES.get(spec.name) == spec:
        del _SOURCES[spec.name]


def _source_form(source: str) -> tuple[SourceSpec | None, str]:
    """`data.source` -> (its form's spec, the argument after 'name:'); (None, '') if none."""
    name, sep, arg = str(source).partition(":")
    spec = _SOURCES.get(name)
    if spec is None or spec.takes_argument != bool(sep):
        return None, ""
    return spec, arg


def _forms(which: Callable[[SourceSpec], bool] = lambda spec: True) -> str:
    usages = [spec.usage for spec in _SOURCES.values() if which(spec)]
    return ", ".join(usages[:-1]) + " or " + usages[-1] if len(usages) > 1 else usages[0]


for _form in (
    SourceSpec(
        "synthetic",
        _synthetic_sources,
        "'synthetic'",
        takes_argument=False,
        encoded=False,
        real_sketches=False,
    ),
    SourceSpec(
        "folder",
        _folder_sources,
        "'folder:/path/to/images'",
        paired_layout=True,
        held_out=_folder_held_out,
    ),
    SourceSpec("tfds", _tfds_sources, "'tfds:NAME' (with data.data_dir)", held_out=_tfds_held_out),
):
    register(_form)
del _form


def _has_real_sketches(source, paired: bool) -> bool:
    return paired or getattr(source, "has_sketch", False)


def make_sources(config: ml_collections.ConfigDict):
    """`data.source` -> (train source, validation source), checked to hold usable images."""
    spec = config.data.source
    form, arg = _source_form(spec)
    if form is None:
        raise ConfigError(f"data.source={spec!r} is not a known source; use {_forms()}.")
    if config.data.sketch == sketch_lib.DATASET_SKETCH and not form.real_sketches:
        raise ConfigError(
            "data.sketch='dataset' needs a source with real sketches (data.layout='paired' "
            f"or a TFDS dataset with a 'sketch' feature); data.source={spec!r} has none."
        )
    if not form.encoded:
        return form.splits(config, arg)
    paired = config.data.layout == "paired"
    if paired and not form.paired_layout:
        raise ConfigError(
            f"data.layout='paired' applies to {_forms(lambda f: f.paired_layout)} sources, not "
            f"data.source={spec!r}; a "
            "dataset packed with `prepare --layout paired` already stores colour and sketch "
            "apart (use data.layout='single' and data.sketch='dataset')."
        )
    try:
        train, val = form.splits(config, arg)
        if config.data.sketch == sketch_lib.DATASET_SKETCH and not _has_real_sketches(
            train, paired
        ):
            raise ValueError(
                "data.sketch='dataset' but the images hold no real sketches; set "
                "data.layout='paired' (colour left, sketch right) or prepare the data with "
                "--layout paired, or derive sketches (data.sketch='xdog')"
            )
        # Training decodes JPEGs at a reduced scale where the random crop allows it; the
        # longer crop side bounds the short side needed for any aspect ratio.
        side = max(image_hw(config))
        train = sources.DecodedSource(train, min_side=math.ceil(side * CROP_MARGIN), paired=paired)
        val = sources.DecodedSource(val, min_side=side, paired=paired)
        train.first_usable()  # fail now, not inside a worker, if nothing can be used
        val.first_usable()
    except (OSError, ValueError) as e:  # missing, empty, unreadable, wrong format
        raise ConfigError(f"data.source={spec!r}: {e}") from e
    return train, val


def held_out_source(
    config: ml_collections.ConfigDict,
    spec: str,
    *,
    data_dir: str | None = None,
    split: str | None = None,
):
    """Another set than the run's own splits, read as its validation split is: every image of
    `folder:DIR` (recursive, no split; data.layout as the run's) or one split of `tfds:NAME` under
    `data_dir` (default: the split validation would read, else train). Checked to hold usable
    images; a problem raises OSError or ValueError saying what is wrong."""
    form, arg = _source_form(spec)
    if form is None or form.held_out is None:
        offered = [f.usage for f in _SOURCES.values() if f.held_out is not None]
        raise ValueError(f"{spec!r} is none of {', '.join(offered)}")
    paired = form.paired_layout and config.data.layout == "paired"
    encoded = form.held_out(arg, data_dir, split)
    if config.data.sketch == sketch_lib.DATASET_SKETCH and not _has_real_sketches(encoded, paired):
        raise ValueError(
            "the run reads real sketches (data.sketch='dataset') but these images hold none; "
            "give a folder of colour|sketch pairs or a dataset packed with --layout paired"
        )
    source = sources.DecodedSource(encoded, min_side=max(image_hw(config)), paired=paired)
    source.first_usable()
    return source


@dataclasses.dataclass(frozen=True)
class MakeExample(grain.transforms.RandomMap):
    """Image (array, or DecodedSource element) -> one example: the arrays `schema.fields`
    declares for these options, and "skipped" (int32)."""

    image_size: int | tuple[int, int]  # square side or (height, width)
    sketch: str
    hints: str
    train: bool
    random_flip: bool
    sketch_augment: bool = True
    reference: bool = False  # add a "reference" RGB image (reference-guided generators)
    # The hint method's training draw (its spec's `make`), carried as a function so that Grain
    # workers draw with a method registered in this process only (None: from `hints`).
    make_hints: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    # `data.sketch`'s extractors and weights (sketch.sketch_mix), carried for the same reason
    # (None: from `sketch`, or no extractor: dataset or model sketches).
    sketch_mix: tuple | None = None
    # The batch schema's keys for these options (schema.fields), resolved in this process for
    # the same reason: a registered hint method's channels are unknown in a fresh worker.
    keys: tuple[str, ...] | None = None
    # The device path (data.derive = "device"): the hint method's host sampler (its spec's
    # `sample`), for methods whose device form rasterises host-sampled geometry.
    sample_hints: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

    def random_map(self, element, rng: np.random.Generator):
        if isinstance(element, dict):
            color, real_sketch = element["color"], element.get("sketch")
            skipped = element["skipped"]
        else:
            color, real_sketch, skipped = element, None, np.int32(0)
        keys = self.keys or tuple(
            schema.channels(sketch=self.sketch, hints=self.hints, reference=self.reference)
        )
        reference = None
        if "reference" in keys and self.train:  # drawn first, from the whole uncropped image
            reference = _training_reference_view(color, self.image_size, rng)
        use_real = self.sketch == sketch_lib.DATASET_SKETCH
        # A sketch model runs on device inside the step: the host ships no sketch.
        on_device = "sketch" not in keys
        if use_real:  # crop and flip the colour image and its sketch together
            color = np.concatenate([color, real_sketch], axis=-1)
        if color.shape[:2] != hw(self.image_size):
            color = crop_resize(color, self.image_size, rng if self.train else None)
        if self.train and self.random_flip and rng.random() < 0.5:
            # = color[:, ::-1], copied by OpenCV: numpy's copy of that reversed view is ~10x
            # slower (0.3 ms at 256 px, a third of the device path's host time).
            color = cv2.flip(color, 1).reshape(color.shape)
        if use_real:
            color, sketch = color[..., :3], np.ascontiguousarray(color[..., 3:])
            if self.sketch_augment:
                sketch = sketch_lib.augment(sketch, rng)
        color = np.ascontiguousarray(color)
        if not use_real and not on_device:
            # The example's rng (per index, also in evaluation) keeps both deterministic.
            extractors, probs = self.sketch_mix or sketch_lib.sketch_mix(self.sketch)
            sketch = sketch_lib.mix_sketch(
                extractors, probs, color, rng, augmented=self.sketch_augment
            )
        example = {"color": color}
        if not on_device:
            example["sketch"] = sketch
        if "hints" in keys:  # hints="none" ships no array at all
            make_hints = self.make_hints or hints_lib.hint_spec(self.hints).make
            example["hints"] = make_hints(color, rng)
        if schema.SEED in keys:  # the device path: the step draws from this example's seed
            example[schema.SEED] = rng.integers(0, 2**32, dtype=np.uint32)
            if schema.HINTS_SAMPLE in keys:
                example[schema.HINTS_SAMPLE] = self.sample_hints(color, rng)
        example[schema.SKIPPED] = skipped  # unusable files passed over to reach this one
        if "reference" in keys:
            # Evaluation: the target's own view (the "paired" reference).
            example["reference"] = color.copy() if reference is None else reference
        return example


def _example_transform(config: ml_collections.ConfigDict, train: bool) -> MakeExample:
    sketch = config.data.sketch
    keys = tuple(schema.config_fields(config))
    derived = "sketch" in keys and sketch != sketch_lib.DATASET_SKETCH
    spec = hints_lib.hint_spec(config.data.hints)
    reference = registry.generator(config.model.generator).takes_reference
    return MakeExample(
        image_size=image_hw(config),
        sketch=config.data.sketch,
        hints=config.data.hints,
        make_hints=spec.make,
        sketch_mix=sketch_lib.sketch_mix(sketch) if derived else None,
        keys=keys,
        sample_hints=spec.sample if schema.HINTS_SAMPLE in keys else None,
        train=train,
        random_flip=config.data.random_flip,
        sketch_augment=config.data.sketch_augment,
        reference=reference,
    )


class ProcessRows(grain.MapDataset):
    """This process's rows of every global batch of `parent` (a stream of examples).

    Global batch s is stream positions s*batch_size .. (s+1)*batch_size-1; process i of n
    takes its contiguous block of `batch_size // n` of them, the rows its devices hold. So
    the global batches, and each example's augmentation (drawn from its stream position), are
    the same for any number of processes, and every process yields the same number of rows.
    """

    def __init__(self, parent: grain.MapDataset, batch_size: int, index: int, count: int):
        super().__init__(parent)
        self._global, self._local, self._index = batch_size, batch_size // count, index
        self._length = len(parent) // batch_size * self._local

    def __len__(self) -> int:
        return self._length

    def _parent_index(self, index: int) -> int:
        step, row = divmod(index, self._local)
        return step * self._global + self._index * self._local + row

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[self._parent_index(index)]

    def __str__(self) -> str:
        return f"ProcessRows(batch_size={self._global}, rows={self._local}, index={self._index})"


def _guard_grain_profiling_flag() -> None:
    """Lets Grain start worker processes where no absl app has parsed flags (tests, notebooks),
    without setting or parsing any absl flag.

    Grain reads its flags through grain.config's get_or_default (the default before parsing)
    and hands its workers the ones they need as arguments (process_prefetch._parse_debug_flags),
    except one read: grain 0.2.18's profiler.is_worker_profiling_enabled reads
    --grain_enable_multiprocess_worker_profiling unguarded in this process as mp_prefetch starts
    a worker, raising UnparsedFlagAccessError. Later Grain catches it and returns the flag's
    default, as this wrapper does; there, and once flags are parsed, the wrapper changes nothing.
    """
    check = grain_profiler.is_worker_profiling_enabled
    if getattr(check, "guards_unparsed_flags", False):
        return

    def guarded() -> bool:
        try:
            return check()
        except UnparsedFlagAccessError:
            return False  # the flag's default

    guarded.guards_unparsed_flags = True
    grain_profiler.is_worker_profiling_enabled = guarded


def train_dataset(
    config: ml_collections.ConfigDict, source, *, start: int = 0
) -> grain.IterDataset:
    """Infinite, shuffled (reshuffled every epoch), per-process batches: this process's rows of
    one global stream, which every process shuffles alike and reads only its part of.

    `start` skips that many examples of the process's stream; a resume whose saved iterator
    state cannot be used (another process count) starts at `step * per-process batch` instead,
    which is global example `step * batch_size` for any process count.
    """
    ds = grain.MapDataset.source(source)
    ds = ds.seed(config.seed).shuffle().repeat()
    ds = ds.random_map(_example_transform(config, train=True))
    # Lazy: only this process's rows are decoded and transformed.
    ds = ProcessRows(ds, config.batch_size, jax.process_index(), jax.process_count())
    if start:
        # After the random map, so each example keeps the augmentation of an unbroken run.
        ds = ds[start:]
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=4, prefetch_buffer_size=64))
    # Each process loads its own rows of the global batch (see parallel.create_mesh).
    ds = ds.batch(config.batch_size // jax.process_count(), drop_remainder=True)
    if config.data.num_workers > 0:
        _guard_grain_profiling_flag()
        ds = ds.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=config.data.num_workers,
                per_worker_buffer_size=config.data.prefetch,
            )
        )
    return ds


def pop_skipped(batch: dict[str, np.ndarray]) -> int:
    """Removes the per-example skip counts from a host batch (the step never sees them) and
    returns how many unusable files were passed over to fill it."""
    return int(batch.pop(schema.SKIPPED).sum())


def validation_batch(config: ml_collections.ConfigDict, source) -> dict[str, np.ndarray]:
    """The fixed evaluation batch: this process's rows of the first `eval_batch_size` examples."""
    # Small splits: images repeat to fill the fixed batch (unusable ones are replaced anyway).
    ds = eval_examples(config, source)
    examples = [ds[i % len(source)] for i in range(config.eval_batch_size)]
    for e in examples:
        del e[schema.SKIPPED]
    # The contiguous block this process's devices hold (see parallel.create_mesh).
    per_process = config.eval_batch_size // jax.process_count()
    first = jax.process_index() * per_process
    rows = examples[first : first + per_process]
    return {k: np.stack([e[k] for e in rows]) for k in rows[0]}


def eval_examples(config: ml_collections.ConfigDict, source) -> grain.MapDataset:
    """Every example of `source` as evaluation sees it (centre crop, fixed per-index
    sketch/hints), repeated without end so a last partial batch can be padded (later passes
    draw other sketches; they only pad). The first pass is what `validation_batch` shows."""
    ds = grain.MapDataset.source(source).seed(config.seed)
    return ds.random_map(_example_transform(config, train=False)).repeat()
