"""pix2pix's image pool: the vectorised query against the sequential algorithm, the swap rate,
what the jitted step feeds D, the non-finite skip, and the checkpoint round trip."""

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import checkpoint, parallel
from jaxcolor.export import exporter
from jaxcolor.nets.inputs import apply, model_inputs
from jaxcolor.training import image_pool, losses
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import POOL_STREAM, jit_train_step


def _id_images(ids, hw=2):
    """Images whose every pixel encodes an integer id 0..255 exactly (value id / 127.5 - 1)."""
    ids = np.asarray(ids, np.float32)
    return jnp.asarray(np.broadcast_to(ids[:, None, None, None] / 127.5 - 1, (len(ids), hw, hw, 1)))


def _ids(images):
    """Inverse of _id_images (the pixel at 0, 0)."""
    return np.rint((np.asarray(images, np.float64)[:, 0, 0, 0] + 1) * 127.5).astype(int)


def _pix2pix_query(pool: list, size: int, ids, coin, slot):
    """pytorch-CycleGAN-and-pix2pix util/image_pool.py ImagePool.query, one image at a time,
    with its random draws (p > 0.5, randint) replaced by the given ones."""
    returned = []
    for i, c, s in zip(ids, coin, slot, strict=True):
        if len(pool) < size:
            pool.append(i)
            returned.append(i)
        elif c:
            returned.append(pool[s])
            pool[s] = i
        else:
            returned.append(i)
    return returned


@pytest.mark.parametrize("size,batch", [(5, 4), (3, 8)])
def test_vectorised_query_is_pix2pix_sequential_query(size, batch):
    # Small pools make repeated slots within one batch common, and (3, 8) fills mid-batch.
    pool = image_pool.ImagePool(jnp.zeros((size, 2, 2, 1), jnp.uint8), jnp.zeros((), jnp.int32))
    reference: list[int] = []
    apply = jax.jit(image_pool.apply)
    for t in range(30):
        ids = np.arange(t * batch, (t + 1) * batch) % 256
        coin, slot = image_pool.draws(jax.random.key(t), batch, size, 0.5)
        pool, returned, from_pool = apply(pool, _id_images(ids), coin, slot)
        expected = _pix2pix_query(reference, size, ids, np.asarray(coin), np.asarray(slot))
        np.testing.assert_array_equal(_ids(returned), expected, err_msg=f"query {t}")
        np.testing.assert_array_equal(np.asarray(from_pool), np.asarray(expected) != ids)
        np.testing.assert_array_equal(
            _ids(image_pool.decode(pool.images))[: len(reference)], reference
        )
        assert int(pool.count) == len(reference)


def test_stored_fakes_come_back_with_the_swap_probability():
    size, batch, queries = 50, 8, 160

    @jax.jit
    def run(key, prob):
        def body(pool, t):
            ids = t * batch + jnp.arange(batch)
            # Two exact uint8 channels (id // 256, id % 256): ids stay unique over the run.
            digits = jnp.stack([ids // 256, ids % 256], -1).astype(jnp.float32) / 127.5 - 1
            x = jnp.broadcast_to(digits[:, None, None, :], (batch, 2, 2, 2))
            pool, returned, from_pool = image_pool.query(pool, x, jax.random.fold_in(key, t), prob)
            back = jnp.round((returned[:, 0, 0] + 1) * 127.5).astype(jnp.int32)
            return pool, (ids, back[:, 0] * 256 + back[:, 1], from_pool)

        init = image_pool.ImagePool(jnp.zeros((size, 2, 2, 2), jnp.uint8), jnp.zeros((), jnp.int32))
        return jax.lax.scan(body, init, jnp.arange(queries))

    full_from = -(-size // batch)  # the first query that starts with a full pool
    for prob in (0.0, 0.5, 1.0):
        _, (ids, returned, from_pool) = jax.device_get(run(jax.random.key(0), prob))
        assert not from_pool[: size // batch].any()  # filling: D gets the new fakes
        shown = from_pool[full_from:].mean()
        if prob == 0.5:
            # 1216 Bernoulli(0.5) draws: sd 0.0143, so +-0.07 is a 5-sigma bound.
            assert abs(shown - 0.5) < 0.07, shown
        else:
            assert shown == prob
        # A stored image is a genuine past fake: generated before it comes back (never the
        # current one), and it leaves the pool when returned, so it comes back at most once.
        assert (returned[from_pool] < ids[from_pool]).all()
        assert (returned[~from_pool] == ids[~from_pool]).all()
        stored = returned[from_pool]
        assert len(np.unique(stored)) == len(stored)


def _pool_run(c):
    """(config, mesh, state, nets, jitted step): tiny U-Net + PatchGAN with a 50-image pool.

    One config for the step, skip and checkpoint tests, so the step compiles once per session.
    """
    c.model.image_pool.size = 50
    c.train.on_nonfinite = "skip"
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(c, mesh=mesh)
    return c, mesh, state, nets, jit_train_step(nets, c, mesh)


def _batches(config, n, seed=0):
    """Batches whose sketch carries a unique example id (so D's inputs can be traced)."""
    rng = np.random.default_rng(seed)
    s, b = config.image_size, config.batch_size
    for t in range(n):
        sketch = np.broadcast_to(((t * b + np.arange(b)) % 256)[:, None, None, None], (b, s, s, 1))
        yield {
            "color": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
            "sketch": np.ascontiguousarray(sketch, dtype=np.uint8),
            "hints": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
        }


def test_step_feeds_d_the_pool_and_stores_past_fakes(tiny_config):
    config, mesh, state, nets, step = _pool_run(tiny_config)

    @jax.jit
    def expected_d_input(state, batch):
        """What D should see: this step's fakes passed through the pool with the step's key."""
        condition, target = model_inputs(batch)
        fake, _ = apply(nets.g_graph, state.g.params, state.g.stats, condition, train=True)
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        pair = jnp.concatenate([condition, fake], -1)
        pool, returned, from_pool = image_pool.query(
            state.pool, pair, jax.random.fold_in(key, POOL_STREAM), config.model.image_pool.prob
        )
        real = jnp.concatenate([condition, target], -1)
        real_logits, stats = apply(nets.d_graph, state.d.params, state.d.stats, real, train=True)
        fake_logits, _ = apply(nets.d_graph, state.d.params, stats, returned, train=True)
        d_loss = losses.discriminator_loss(config.loss.gan_mode, real_logits, fake_logits)
        return image_pool.encode(pair), pool, d_loss, from_pool

    sharding = parallel.batch_sharding(mesh)
    shown, ids_seen = [], set()
    for t, host in enumerate(_batches(config, 60)):
        batch = parallel.to_global(host, sharding)
        pairs, pool, d_loss, from_pool = jax.device_get(expected_d_input(state, batch))
        before = np.asarray(state.pool.images)
        state, metrics = step(state, {}, batch)
        after = np.asarray(state.pool.images)
        # D was trained on the pool's output: its loss is the loss on those images.
        np.testing.assert_allclose(metrics["d_loss"], d_loss, rtol=1e-4, err_msg=f"step {t}")
        np.testing.assert_allclose(metrics["d_pool_fraction"], from_pool.mean())
        # Every slot written this step holds one of this step's (condition, fake) pairs, up to
        # one uint8 step of rounding between the two compilations of G.
        ids_seen |= set(host["sketch"][:, 0, 0, 0].tolist())
        for s in np.flatnonzero((after != before).reshape(len(after), -1).any(1)):
            j = np.flatnonzero(host["sketch"][:, 0, 0, 0] == after[s, 0, 0, 0])
            assert len(j) == 1, f"step {t}: slot {s} holds no fake of this batch"
            diff = np.abs(after[s].astype(int) - pairs[j[0]].astype(int))
            assert diff.max() <= 1, f"step {t}: slot {s} is not the fake of example {j[0]}"
        # The pool's contents are all fakes generated so far.
        assert set(after[: int(state.pool.count), 0, 0, 0].tolist()) <= ids_seen
        shown.append(float(metrics["d_pool_fraction"]))
    assert int(state.pool.count) == 50
    assert shown[: 50 // 8] == [0.0] * (50 // 8)
    # 53 full steps x 8 examples, p = 0.5: sd 0.024, 5 sigma 0.12.
    assert abs(np.mean(shown[7:]) - 0.5) < 0.12, shown


def test_skipped_nonfinite_step_keeps_the_pool(tiny_config):
    config, mesh, state, nets, step = _pool_run(tiny_config)
    batches = [parallel.to_global(b, parallel.batch_sharding(mesh)) for b in _batches(config, 2)]
    state, _ = step(state, {}, batches[0])
    good = jax.device_get(state.pool)
    assert int(good.count) == 8
    # A NaN in the generator's last layer makes every fake (and so every loss) NaN.
    params = jax.tree.map(lambda x: x, state.g.params)
    params["ups"][0]["bias"] = params["ups"][0]["bias"] * jnp.nan
    state = state.replace(g=state.g.replace(params=params))
    state, metrics = step(state, {}, batches[1])
    assert bool(metrics["nonfinite"])
    np.testing.assert_array_equal(state.pool.images, good.images)
    assert int(state.pool.count) == 8


def test_pool_survives_a_checkpoint_round_trip(tiny_config, tmp_path):
    config, mesh, state, nets, step = _pool_run(tiny_config)
    batches = [parallel.to_global(b, parallel.batch_sharding(mesh)) for b in _batches(config, 9)]
    for batch in batches[:8]:
        state, _ = step(state, {}, batch)
    assert int(state.pool.count) == 50 and np.asarray(state.pool.images).any()
    saved = jax.device_get(state)

    data_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", config)
    ckpt.save(8, state, data_iter, data_start=0)
    ckpt.close()

    # The restore target: the state's shapes and shardings, other values.
    fresh = jax.jit(
        lambda s: jax.tree.map(jnp.zeros_like, s), out_shardings=parallel.replicated(mesh)
    )(state)
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", config)
    assert ckpt.latest_step() == 8
    restored = ckpt.restore(fresh, 8, ckpt.metadata(8))
    ckpt.close()
    np.testing.assert_array_equal(restored.pool.images, saved.pool.images)
    assert restored.pool.images.dtype == np.uint8 and int(restored.pool.count) == 50
    assert restored.pool.images.sharding.is_equivalent_to(state.pool.images.sharding, 4)

    # The next step swaps with stored fakes: the same ones after the restore.
    a, metrics_a = jax.device_get(step(state, {}, batches[8]))
    b, metrics_b = jax.device_get(step(restored, {}, batches[8]))
    assert metrics_a["d_pool_fraction"] > 0
    assert metrics_a == metrics_b
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # The exporter rebuilds the state's shapes from the saved config, pool included.
    exported = exporter.restore(str(tmp_path))
    np.testing.assert_array_equal(exported.state.pool.images, saved.pool.images)


def test_a_pool_checkpoint_does_not_resume_without_the_pool(tiny_config, tmp_path):
    config = tiny_config
    config.model.image_pool.size = 20
    mesh = parallel.create_mesh(1)
    state, _ = create_train_state(config, mesh=mesh)
    ckpt = checkpoint.Checkpointer(tmp_path, config)
    ckpt.save(1, state, iter(grain.MapDataset.range(8).to_iter_dataset()), data_start=0)
    ckpt.close()
    config.model.image_pool.size = 0
    fresh, _ = create_train_state(config, mesh=mesh)
    ckpt = checkpoint.Checkpointer(tmp_path, config)
    with pytest.raises(checkpoint.CheckpointMismatchError, match="model.image_pool.size"):
        ckpt.restore(fresh, 1, ckpt.metadata(1))
    ckpt.close()
