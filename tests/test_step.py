"""The jitted GAN step: sharding equivalence, GAN modes, dtypes, donation, the loss terms on
the console line, the moving average of the generator (train.ema_decay)."""

import jax
import numpy as np
import pytest
from conftest import load_config

from jaxcolor import parallel, summary
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import pipeline
from jaxcolor.evaluation.evaluator import SplitEvaluator
from jaxcolor.evaluation.fixed_batch import jit_eval_step
from jaxcolor.training import config_checks
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import jit_train_step


def _batch(n: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n, size, size)
    return {
        "color": rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
        "sketch": rng.integers(0, 256, (*shape, 1), dtype=np.uint8),
        "hints": rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
    }


def _one_step(config, mesh, batch):
    state, nets = create_train_state(config, mesh=mesh)
    step = jit_train_step(nets, config, mesh)
    new_state, metrics = step(state, {}, parallel.to_global(batch, parallel.batch_sharding(mesh)))
    return jax.device_get(new_state), jax.device_get(metrics)


def test_sharded_step_matches_single_device(tiny_config):
    assert jax.device_count() == 8
    batch = _batch(tiny_config.batch_size, tiny_config.image_size)
    state8, metrics8 = _one_step(tiny_config, parallel.create_mesh(-1), batch)
    state1, metrics1 = _one_step(tiny_config, parallel.create_mesh(1), batch)

    for name in metrics1:
        np.testing.assert_allclose(metrics8[name], metrics1[name], rtol=1e-4, err_msg=name)
    # BatchNorm statistics are over the global batch in both cases, so they agree too.
    for path, a, b in zip(
        jax.tree_util.tree_leaves_with_path(state8),
        jax.tree.leaves(state8),
        jax.tree.leaves(state1),
        strict=True,
    ):
        np.testing.assert_allclose(
            a, b, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path[0])
        )


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "hinge", "none"])
def test_every_gan_mode_trains(tiny_config, mode):
    tiny_config.loss.gan_mode = mode
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(tiny_config, mesh=mesh)
    assert (state.d is None) == (mode == "none")
    before = jax.device_get(state.g.params)
    step = jit_train_step(nets, tiny_config, mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    state, metrics = step(state, {}, batch)
    metrics = jax.device_get(metrics)
    assert int(state.step) == 1
    assert all(np.isfinite(v) for v in metrics.values())
    assert ("d_loss" in metrics) == (mode != "none")
    changed = jax.tree.map(
        lambda a, b: not np.array_equal(a, b), before, jax.device_get(state.g.params)
    )
    assert all(jax.tree.leaves(changed)), "every generator parameter receives an update"


def test_l2_reconstruction_and_bfloat16_compute(tiny_config):
    tiny_config.loss.recon = "l2"
    tiny_config.compute_dtype = "bfloat16"
    mesh = parallel.create_mesh(-1)
    state, metrics = _one_step(tiny_config, mesh, _batch(8, 32))
    assert "g_l2" in metrics and np.isfinite(metrics["g_l2"])
    dtypes = {x.dtype for x in jax.tree.leaves((state.g.params, state.d.params, state.g.opt))}
    assert dtypes <= {np.dtype("float32"), np.dtype("int32")}


def test_dropout_rng_differs_per_step_and_eval_is_deterministic(tiny_config):
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(tiny_config, mesh=mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    evaluate = jit_eval_step(nets, mesh)
    pred_a, _ = evaluate(state, {}, batch)
    pred_b, metrics = evaluate(state, {}, batch)
    np.testing.assert_array_equal(pred_a, pred_b)
    assert set(metrics) == {"l1", "psnr", "ssim"}
    assert pred_a.sharding.spec == parallel.batch_sharding(mesh).spec


def test_state_is_donated(tiny_config):
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(tiny_config, mesh=mesh)
    step = jit_train_step(nets, tiny_config, mesh)
    leaf = jax.tree.leaves(state.g.params)[0]
    step(state, {}, parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh)))
    assert leaf.is_deleted(), "the old state's buffers are reused by the step"


def _console_line(metrics, monkeypatch) -> str:
    """The progress line the metrics logger prints for a step's `metrics` (any values)."""
    lines = []
    monkeypatch.setattr(summary, "log_line", lines.append)
    logger = summary.MetricsLogger(
        _NoWriter(), start_step=0, num_steps=1, batch_size=8, log_every=1
    )
    logger.buffer(1, jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), metrics))
    logger.flush()
    (line,) = [x for x in lines if x.startswith("step 1/1")]
    return line


class _NoWriter:
    def scalars(self, step, values, prefix):
        pass


def _shown(line: str) -> list[str]:
    """The names in the line's loss section: `step 1/1 (100%) | g_l1 0.0000 d_loss 0.0000`."""
    return line.split(" | ")[1].split()[::2]


def test_console_line_shows_every_loss_term_the_step_optimises(tiny_config, monkeypatch):
    c = load_config("resunet_palette")  # deep supervision: two aux outputs with weights
    c.image_size, c.batch_size, c.compute_dtype = 32, 8, "float32"
    c.model.generator.update(ngf=4, num_downs=3, max_mult=4)
    c.model.discriminator.update(ndf=8, n_layers=2)
    c.data.hints, c.loss.hint_weight = "points", 1.0
    mesh = parallel.create_mesh(-1)
    created = {}

    def init():
        state, created["nets"] = create_train_state(c, mesh=mesh)
        return state

    state = jax.eval_shape(init)
    batch = _batch(8, 32) | {"hints": np.zeros((8, 32, 32, 4), np.uint8)}
    batch = parallel.to_global(batch, parallel.batch_sharding(mesh))
    _, metrics = jax.eval_shape(jit_train_step(created["nets"], c, mesh), state, {}, batch)
    expected = ["g_l1", "g_aux1", "g_aux2", "g_hint", "g_gan", "d_loss"]
    assert list(metrics.losses) == expected
    assert _shown(_console_line(metrics, monkeypatch)) == expected
    # Without a discriminator, D's loss is neither computed nor shown.
    tiny_config.loss.gan_mode = "none"
    _, metrics = _one_step(tiny_config, mesh, _batch(8, 32))
    assert _shown(_console_line(metrics, monkeypatch)) == ["g_l1"]


def _ema_config(config, decay=0.9):
    config.train.ema_decay = decay
    config.optimizer.learning_rate = 1e-2  # the average and the raw weights differ visibly
    return config


def test_ema_follows_its_recursion_with_warm_up(tiny_config):
    c = _ema_config(tiny_config, decay=0.15)
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(c, mesh=mesh)
    start = jax.device_get(state.g.params)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.ema), start)
    step = jit_train_step(nets, c, mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    expected = start
    for t in range(3):
        state, _ = step(state, {}, batch)
        decay = min(0.15, (1 + t) / (10 + t))  # 0.1 (the warm-up's first), then 0.15
        params = jax.device_get(state.g.params)
        expected = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * p, expected, params)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
            jax.device_get(state.ema),
            expected,
        )
    raw = jax.tree.leaves(jax.device_get(state.g.params))
    assert any(not np.allclose(a, b) for a, b in zip(raw, jax.tree.leaves(expected), strict=True))


def test_ema_is_off_by_default_and_checked(tiny_config):
    mesh = parallel.create_mesh(1)
    state, _ = create_train_state(tiny_config, mesh=mesh)
    assert tiny_config.train.ema_decay == 0.0 and state.ema is None
    assert state.inference_generator() is state.g
    on, _ = create_train_state(_ema_config(tiny_config.copy_and_resolve_references()), mesh=mesh)
    # Off, the state holds exactly the leaves it held before the EMA existed.
    assert _leaf_paths(state) == [p for p in _leaf_paths(on) if not p.startswith(".ema")]
    assert len(_leaf_paths(on)) > len(_leaf_paths(state))
    for bad in (-0.1, 1.0):
        tiny_config.train.ema_decay = bad
        with pytest.raises(ConfigError, match=r"^train\.ema_decay must be in \[0, 1\) \(0 = off"):
            config_checks.validate(tiny_config)


def _leaf_paths(tree) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def test_evaluation_uses_the_ema_weights(tiny_config):
    """The fixed-batch and whole-split evaluations score the moving average (with the
    generator's running BatchNorm statistics), not the raw weights."""
    c = _ema_config(tiny_config)
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(c, mesh=mesh)
    step = jit_train_step(nets, c, mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    for _ in range(2):
        state, _ = step(state, {}, batch)
    averaged = state.replace(g=state.g.replace(params=state.ema), ema=None)
    raw = state.replace(ema=None)
    evaluate = jit_eval_step(nets, mesh, c)
    pred = np.asarray(evaluate(state, {}, batch)[0])
    np.testing.assert_array_equal(pred, np.asarray(evaluate(averaged, {}, batch)[0]))
    assert np.abs(pred - np.asarray(evaluate(raw, {}, batch)[0])).mean() > 1e-3

    source = pipeline.make_sources(c)[1]
    split = SplitEvaluator(c, nets, {}, mesh, source, batch_size=8, max_images=8)
    scores = split(state).columns
    assert scores == split(averaged).columns and scores != split(raw).columns
