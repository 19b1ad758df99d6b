"""Image grids, the console progress line, the step's metrics and the train metrics logger."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import summary


def test_image_grid_places_each_column_and_row():
    n, h, w = 3, 8, 10
    sketch = np.full((n, h, w, 1), 7, np.uint8)
    no_hints = np.zeros((n, h, w, 0), np.uint8)
    pred = np.full((n, h, w, 3), -1.0, np.float32)  # [-1, 1] floats -> 0
    target = np.full((n, h, w, 3), 200, np.uint8)
    grid = summary.image_grid([sketch, no_hints, pred, target], max_rows=2, pad=2)
    assert grid.shape == (2 * (h + 2) + 2, 4 * (w + 2) + 2, 3) and grid.dtype == np.uint8
    row = slice(2 + h + 2, 2 + h + 2 + h)  # the second example
    col = lambda j: slice(2 + j * (w + 2), 2 + j * (w + 2) + w)  # noqa: E731
    assert (grid[row, col(0)] == 7).all()
    assert (grid[row, col(1)] == 128).all()  # gray placeholder when there are no hints
    assert (grid[row, col(2)] == 0).all()
    assert (grid[row, col(3)] == 200).all()


def test_progress_line_reports_rate_and_eta_only_when_timed():
    progress = summary.Progress(start_step=0, num_steps=100, batch_size=16)
    progress.reset(1)
    first = progress.update(1)
    assert first == {}
    assert progress.line(1, {"g_l1": 0.5}, first, ("g_l1",)) == "step 1/100 (1%) | g_l1 0.5000"
    assert progress.line(1, {"g_l1": 0.5}, first) == "step 1/100 (1%)"  # no loss named
    rate = progress.update(51)
    assert rate["images_per_sec"] == rate["steps_per_sec"] * 16 > 0
    metrics = {"lr": 1.0, "g_style": 0.5, "d_loss": 0.7, "g_l1": 0.25}
    line = progress.line(51, metrics, rate, ("g_l1", "g_style", "d_loss"))
    assert line.startswith("step 51/100 (51%) | g_l1 0.2500 g_style 0.5000 d_loss 0.7000 | ")
    assert "img/s | ETA " in line


def test_metrics_name_their_loss_terms_through_jit():
    metrics = summary.Metrics({"lr": jnp.float32(1), "g_l1": jnp.float32(2)}, losses=("g_l1",))
    out = jax.jit(lambda m: jax.tree.map(lambda x: x * 2, m))(metrics)
    assert isinstance(out, summary.Metrics) and out.losses == ("g_l1",)
    assert list(out) == ["lr", "g_l1"] and float(out["g_l1"]) == 4.0  # insertion order kept
    assert summary.loss_terms(jax.device_get(out)) == ("g_l1",)
    assert summary.loss_terms(dict(out)) == ()


def test_metrics_logger_checks_every_step_and_writes_log_steps_one_step_late():
    class Recorder:
        def __init__(self):
            self.written = []

        def scalars(self, step, values, prefix):
            self.written.append((step, prefix, dict(values)))

    def metrics(step, bad=False):
        return {"g_l1": jnp.float32(step), "nonfinite": jnp.bool_(bad)}

    checked = []

    def check(step, metrics):
        checked.append(step)
        return {"nonfinite_skipped": 1} if bool(metrics["nonfinite"]) else {}

    writer = Recorder()
    logger = summary.MetricsLogger(
        writer, start_step=0, num_steps=5, batch_size=8, log_every=2, check=check
    )
    logger.buffer(1, metrics(1, bad=True))
    logger.buffer(2, metrics(2))
    assert checked == [1] and writer.written == []  # step 1 read late, not a log step
    logger.count("skipped_images", 3)
    logger.buffer(3, metrics(3))
    assert checked == [1, 2]
    ((step, prefix, values),) = writer.written
    assert (step, prefix) == (2, "train")
    # The flag is checked, never written; the counts ride along with the log step.
    assert values.pop("steps_per_sec") > 0 and values.pop("images_per_sec") > 0
    assert values == {"g_l1": 2.0, "nonfinite_skipped": 1, "skipped_images": 3}
    with logger.paused():  # an evaluation at step 3: checked and flushed first
        assert checked == [1, 2, 3] and len(writer.written) == 1
    logger.buffer(4, metrics(4))
    logger.buffer(5, metrics(5))
    logger.flush()  # the last step is always written
    assert checked == [1, 2, 3, 4, 5]
    assert [w[0] for w in writer.written] == [2, 4, 5]
