"""The device path (data.derive = "device"): what the host ships, where "auto" goes, and that
sketches and hints made in the step match the host path's (jaxcolor/data/derive.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import parallel
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import derive, pipeline, schema
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.evaluation import evaluator
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import builder, config_checks


def _on(config, path: str, hints: str | None = None):
    config.data.derive = path
    if hints is not None:
        config.data.hints = hints
    return config


def test_auto_derives_on_accelerators_and_on_the_host_for_cpu_meshes(tiny_config):
    c = tiny_config
    assert c.data.derive == "auto"
    assert derive.resolve(c, "cpu").data.derive == "host"
    for platform in ("tpu", "gpu"):
        assert derive.resolve(c, platform).data.derive == "device"
    assert c.data.derive == "auto"  # the caller's config is left as given
    for path in ("host", "device"):
        c.data.derive = path
        assert derive.resolve(c, "tpu").data.derive == path
        assert derive.resolve(c, "cpu").data.derive == path
    # A run decides from its mesh: the CPU mesh of the tests takes the host path.
    c.data.derive = "auto"
    assert builder.build(c, frozen=builder.NONE).config.data.derive == "host"


def test_a_bad_derive_value_is_refused_naming_the_key(tiny_config):
    tiny_config.data.derive = "gpu"
    with pytest.raises(ConfigError, match=r"data\.derive must be one of \('auto', 'host', 'dev"):
        config_checks.validate(tiny_config)


def _toy_extractor(image, rng=None):
    return np.full((*image.shape[:2], 1), 255, np.uint8)


def test_a_method_without_a_device_form_is_refused_on_device_and_auto_falls_back(tiny_config):
    sketch_lib.register("toy_host_only", _toy_extractor)
    try:
        c = _on(tiny_config, "device")
        c.data.sketch = "xdog:0.5,toy_host_only:0.5"
        with pytest.raises(ConfigError, match="data.sketch 'toy_host_only' has no device form"):
            config_checks.validate(c)
        c.data.derive = "auto"
        config_checks.validate(c)
        assert derive.resolve(c, "tpu").data.derive == "host"
    finally:
        sketch_lib.unregister("toy_host_only")


@pytest.mark.parametrize("hints", ["blur", "points", "strokes", "palette", "none"])
def test_device_batches_ship_colour_a_seed_and_sampled_geometry_only(tiny_config, hints):
    c = _on(tiny_config, "device", hints)
    c.data.num_workers = 0
    train, _ = pipeline.make_sources(c)
    batch = next(iter(pipeline.train_dataset(c, train)))
    assert pipeline.pop_skipped(batch) == 0
    want = schema.shapes(c)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == want
    assert "sketch" not in batch and "hints" not in batch
    assert (schema.HINTS_SAMPLE in batch) == (hints in ("points", "strokes"))
    assert len(set(batch[schema.SEED].tolist())) == c.batch_size  # one draw per example
    # The step's batch, once derived, has the host path's keys and shapes.
    full = jax.jit(lambda b: derive.complete(b, derive.eval_key(c), c))(batch)
    host = schema.shapes(_on(c.copy_and_resolve_references(), "host"))
    assert {k: (v.shape, v.dtype) for k, v in full.items()} == host


def _examples(config, n: int):
    _, val = pipeline.make_sources(config)
    rows = [pipeline.eval_examples(config, val)[i] for i in range(n)]
    for row in rows:
        row.pop(schema.SKIPPED)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def test_both_paths_give_the_same_images_and_line_statistics(tiny_config):
    c = tiny_config
    c.image_size, c.data.num_synthetic = 64, 3200  # a validation split of 64 images
    host = _examples(_on(c.copy_and_resolve_references(), "host", "blur"), 64)
    dev_config = _on(c.copy_and_resolve_references(), "device", "blur")
    shipped = _examples(dev_config, 64)
    np.testing.assert_array_equal(shipped["color"], host["color"])  # evaluation: centre crops
    made = jax.device_get(
        jax.jit(lambda b: derive.complete(b, derive.eval_key(dev_config), dev_config))(shipped)
    )
    # blur is deterministic: the same map per image, within the device form's tolerance.
    diff = np.abs(made["hints"].astype(int) - host["hints"].astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    # Sketches are drawn (method parameters, augmentations): the same statistics over 64.
    for name, stat in [
        ("line density", lambda s: (s < 128).mean()),
        ("darkness", lambda s: 1 - s.mean() / 255),
        ("white paper", lambda s: (s == 255).mean()),
    ]:
        a, b = stat(host["sketch"]), stat(made["sketch"])
        assert abs(a - b) <= 0.2 * max(a, b) + 0.005, (name, a, b)


def test_evaluation_on_the_device_path_is_the_same_per_image_for_any_batch(tiny_config):
    c = _on(tiny_config, "device", "points")
    c.data.num_synthetic = 1200  # a validation split of 24 images
    mesh = parallel.create_mesh(-1)
    run = builder.build(c, mesh, frozen=builder.INFERENCE)
    state = run.init_state()
    _, val = pipeline.make_sources(run.config)
    samples = []
    for batch_size in (8, 16):
        split = evaluator.SplitEvaluator(
            run.config, run.nets, run.frozen, mesh, val, batch_size=batch_size,
            max_images=16, samples=16,
        )  # fmt: skip
        samples.append(split(state).samples)
    for key in ("sketch", "hints", "output"):
        np.testing.assert_array_equal(samples[0][key], samples[1][key], err_msg=key)
    assert (samples[0]["hints"][..., -1] == 255).any()  # the points were drawn on device


def test_training_learns_alike_on_either_path(tiny_config, tmp_path):
    """The same small folder-free run on both paths: each lowers its validation L1 from the
    untrained generator's, and they end within 25 % of each other."""
    c = tiny_config
    c.num_steps, c.eval_every, c.log_every, c.checkpoint_every = 60, 60, 20, 60
    c.data.num_workers = 0
    ends = {}
    for path in ("host", "device"):
        cfg = _on(c.copy_and_resolve_references(), path)
        state = train_and_evaluate(cfg, str(tmp_path / path))
        assert int(state.step) == 60
        acc = event_accumulator.EventAccumulator(str(tmp_path / path / "tensorboard"))
        acc.Reload()
        l1 = {e.step: e.value for e in acc.Scalars("val/l1")}
        assert l1[60] < l1[0], (path, l1)
        ends[path] = l1[60]
    assert abs(ends["host"] - ends["device"]) <= 0.25 * max(ends.values()), ends
