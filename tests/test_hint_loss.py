"""The extra generator losses a config turns on: hint fidelity (loss.hint_weight, `g_hint`): which
pixels are hints for each method, the loss on hand-made batches, its config rules, and training
with it; and the SSIM loss (loss.ssim_weight, `g_ssim`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import _events, _scalar

from jaxcolor import parallel, summary
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import pipeline, sketch, sources
from jaxcolor.nets.inputs import to_unit
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import config_checks, losses
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import jit_train_step


def _unit(rgb) -> np.ndarray:
    """uint8 colours in [-1, 1] as the step computes them."""
    return np.asarray(to_unit(jnp.asarray(rgb, jnp.uint8)))


def _masked_hints(shape, pixels: dict) -> np.ndarray:
    """points / strokes layout: {(b, y, x): (r, g, b)} -> uint8 (B, H, W, 4) R, G, B, mask."""
    hints = np.zeros((*shape, 4), np.uint8)
    for (b, y, x), rgb in pixels.items():
        hints[b, y, x] = (*rgb, hints_lib.MASK_ON)
    return hints


@pytest.mark.parametrize("method", ["points", "strokes"])
def test_masked_hints_loss_is_the_mean_error_at_the_hinted_pixels(method):
    pixels = {(0, 1, 2): (255, 0, 0), (1, 3, 0): (10, 200, 30)}
    batch = {"hints": jnp.asarray(_masked_hints((2, 4, 4), pixels))}
    colors, mask = losses.hint_targets(batch, method)
    assert mask.shape == (2, 4, 4) and int(mask.sum()) == 2
    pred = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
    for (b, y, x), rgb in pixels.items():
        pred[b, y, x] = _unit(rgb)
    # The output equals the hints where there are hints: 0, whatever the other pixels hold.
    assert float(losses.hint_loss(jnp.asarray(pred), colors, mask)) == 0.0
    pred[0, 1, 2] += (0.5, -0.25, 0.0)
    pred[1, 3, 0, 1] -= 1.5
    expected = (0.5 + 0.25 + 1.5) / (2 * 3)  # over 2 hinted pixels x 3 channels
    np.testing.assert_allclose(losses.hint_loss(jnp.asarray(pred), colors, mask), expected, 1e-6)


def test_scribbles_hints_are_the_pixels_that_are_not_paper():
    hints = np.full((1, 2, 3, 3), 255, np.uint8)
    hints[0, 0, 0] = (10, 200, 30)
    hints[0, 0, 1] = (250, 250, 240)  # one channel at or below PAPER_LEVEL: a light hint
    hints[0, 1, 2] = (hints_lib.PAPER_LEVEL + 1,) * 3  # every channel above it: paper
    colors, mask = losses.hint_targets({"hints": jnp.asarray(hints)}, "scribbles")
    expected = np.zeros((1, 2, 3), bool)
    expected[0, 0, :2] = True
    np.testing.assert_array_equal(mask, expected)
    # The same rule as the data pipeline's: stroke hints drawn on paper keep their pixels.
    strokes = hints_lib.stroke_hints(sources.SyntheticCartoonSource(1, 64, seed=1)[0], _rng(5))
    on_paper = hints_lib.scribbles_on_paper(strokes)[None]
    _, from_paper = losses.hint_targets({"hints": jnp.asarray(on_paper)}, "scribbles")
    light = (strokes[..., :3] > hints_lib.PAPER_LEVEL).all(-1)
    assert from_paper.any()
    np.testing.assert_array_equal(from_paper[0], (strokes[..., 3] == hints_lib.MASK_ON) & ~light)
    pred = jnp.asarray(_unit(hints[..., :3]))
    assert float(losses.hint_loss(pred, colors, mask)) == 0.0
    expected = np.abs(2 * pred)[0, 0, :2].mean()  # -pred is 2 |pred| away at the 2 hints
    np.testing.assert_allclose(losses.hint_loss(-pred, colors, mask), expected, rtol=1e-6)


def test_no_hinted_pixel_gives_zero_and_finite_gradients():
    batch = {"hints": jnp.zeros((2, 4, 4, 4), jnp.uint8)}  # a points batch without any point
    colors, mask = losses.hint_targets(batch, "points")
    pred = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 4, 4, 3)), jnp.float32)
    loss, grad = jax.value_and_grad(losses.hint_loss)(pred, colors, mask)
    assert float(loss) == 0.0
    assert np.isfinite(grad).all() and not np.asarray(grad).any()


def test_config_rules_name_the_key_and_the_fix(tiny_config):
    c = tiny_config
    c.loss.hint_weight = 1.0
    for method in ("blur", "palette", "none"):
        c.data.hints = method
        with pytest.raises(
            ConfigError,
            match=rf"^loss\.hint_weight=1\.0 .*data\.hints='{method}' does not mark; use "
            r"data\.hints in \('points', 'strokes', 'scribbles'\) or set loss\.hint_weight=0\.",
        ):
            config_checks.validate(c)
    c.data.hints = "points"
    config_checks.validate(c)
    c.loss.hint_weight = -1.0
    with pytest.raises(ConfigError, match=r"loss\.hint_weight must be >= 0 \(0 = off\), got -1"):
        config_checks.validate(c)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _hinted_batch(config, n: int = 8) -> dict[str, np.ndarray]:
    """Synthetic cartoons with their sketches and `config.data.hints`, one rng per image."""
    colors = [sources.SyntheticCartoonSource(n, config.image_size, seed=2)[i] for i in range(n)]
    return {
        "color": np.stack(colors),
        "sketch": np.stack([sketch.make_sketch(config.data.sketch, c) for c in colors]),
        "hints": np.stack(
            [hints_lib.make_hints(config.data.hints, c, _rng(i)) for i, c in enumerate(colors)]
        ),
    }


@pytest.mark.parametrize("method", ["points", "strokes", "scribbles"])
def test_training_with_the_hint_loss_brings_the_output_to_the_hints(tiny_config, method):
    c = tiny_config
    c.data.hints, c.loss.hint_weight = method, 50.0
    config_checks.validate(c)
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(c, mesh=mesh)
    host = _hinted_batch(c)
    _, mask = losses.hint_targets(host, method)
    assert 0 < int(mask.sum()) < mask.size // 4, "a minority of the pixels are hints"
    batch = parallel.to_global(host, parallel.batch_sharding(mesh))
    step = jit_train_step(nets, c, mesh)
    history = []
    for _ in range(4):
        state, metrics = step(state, {}, batch)
        history.append(jax.device_get(metrics))
    for m in history:
        assert m.losses == ("g_l1", "g_hint", "g_gan", "d_loss") and not m["nonfinite"]
        # The generator optimises the term with its weight.
        total = c.loss.recon_weight * m["g_l1"] + 50.0 * m["g_hint"] + m["g_gan"]
        np.testing.assert_allclose(m["g_loss"], total, rtol=1e-5)
    hint_errors = [float(m["g_hint"]) for m in history]
    assert hint_errors == sorted(hint_errors, reverse=True) and hint_errors[-1] < hint_errors[0]


def test_a_run_with_the_hint_loss_logs_g_hint(tiny_config, tmp_path, monkeypatch):
    c = tiny_config
    c.data.hints, c.loss.hint_weight = "points", 10.0
    c.num_steps, c.checkpoint_every = 2, 100
    lines = []
    monkeypatch.setattr(summary, "log_line", lines.append)
    train_and_evaluate(c, str(tmp_path))
    logged = _scalar(_events(tmp_path), "train/g_hint")
    assert sorted(logged) == [2] and np.isfinite(logged[2])
    (line,) = [x for x in lines if x.startswith("step 2/2")]
    assert " g_hint " in line


def test_ssim_loss_is_zero_for_a_perfect_output_and_trains(tiny_config):
    """loss.ssim_weight: 1 - the evaluation's SSIM (0 for the target itself, larger for noise),
    trained end to end as `g_ssim`; too small an image is a config error naming the key."""
    rng = np.random.default_rng(0)
    target = jnp.asarray(rng.uniform(-1, 1, (2, 16, 16, 3)), jnp.float32)
    noisy = jnp.clip(target + 0.5 * rng.standard_normal(target.shape), -1, 1)
    assert float(losses.ssim_loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.ssim_loss(noisy, target)) > 0.2
    grad = jax.grad(losses.ssim_loss)(noisy, target)
    assert bool(jnp.isfinite(grad).all()) and float(jnp.abs(grad).sum()) > 0

    c = tiny_config
    c.loss.ssim_weight = 1.0
    config_checks.validate(c)
    mesh = parallel.create_mesh(-1)
    state, nets = create_train_state(c, mesh=mesh)
    batch = next(iter(pipeline.train_dataset(c, pipeline.make_sources(c)[0])))
    pipeline.pop_skipped(batch)
    _, metrics = jit_train_step(nets, c, mesh)(
        state, {}, parallel.to_global(batch, parallel.batch_sharding(mesh))
    )
    assert "g_ssim" in metrics.losses and 0.0 < float(metrics["g_ssim"]) <= 2.0

    c.loss.ssim_weight, c.image_size = 1.0, 8
    with pytest.raises(ConfigError, match=r"loss\.ssim_weight needs images of at least 11 px"):
        config_checks.validate(c)
    c.image_size, c.loss.ssim_weight = 32, -1.0
    with pytest.raises(ConfigError, match=r"loss\.ssim_weight must be >= 0"):
        config_checks.validate(c)
