"""The jitted GAN step: sharding equivalence, GAN modes, dtypes, donation."""

import jax
import numpy as np
import pytest

from jaxcolor import parallel
from jaxcolor.evaluation.fixed_batch import jit_eval_step
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
    state, nets = create_train_state(config, in_channels=4, mesh=mesh)
    step = jit_train_step(nets, config, mesh)
    new_state, metrics = step(state, parallel.to_global(batch, parallel.batch_sharding(mesh)))
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
    state, nets = create_train_state(tiny_config, in_channels=4, mesh=mesh)
    assert (state.d is None) == (mode == "none")
    before = jax.device_get(state.g.params)
    step = jit_train_step(nets, tiny_config, mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    state, metrics = step(state, batch)
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
    state, nets = create_train_state(tiny_config, in_channels=4, mesh=mesh)
    batch = parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh))
    evaluate = jit_eval_step(nets, mesh)
    pred_a, _ = evaluate(state, batch)
    pred_b, metrics = evaluate(state, batch)
    np.testing.assert_array_equal(pred_a, pred_b)
    assert set(metrics) == {"l1", "psnr", "ssim"}
    assert pred_a.sharding.spec == parallel.batch_sharding(mesh).spec


def test_state_is_donated(tiny_config):
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(tiny_config, in_channels=4, mesh=mesh)
    step = jit_train_step(nets, tiny_config, mesh)
    leaf = jax.tree.leaves(state.g.params)[0]
    step(state, parallel.to_global(_batch(8, 32), parallel.batch_sharding(mesh)))
    assert leaf.is_deleted(), "the old state's buffers are reused by the step"
