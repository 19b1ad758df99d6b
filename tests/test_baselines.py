"""Baselines, hint fidelity and the sample sheet on hand-made images (no network, no data files)."""

import jax
import numpy as np
import pytest

from jaxcolor.data import hints as H
from jaxcolor.evaluation import baselines, evaluator, hint_fidelity, sample_sheet
from jaxcolor.nets import inputs

SIZE = 32
# Four flat quadrants per image, so a point inside one has exactly the target's colour there.
QUADRANTS = np.array(
    [
        [[200, 30, 40], [20, 180, 60], [30, 40, 220], [240, 220, 30]],
        [[90, 10, 160], [250, 250, 250], [10, 10, 10], [120, 200, 210]],
        [[60, 140, 90], [210, 120, 30], [160, 160, 160], [30, 90, 200]],
    ],
    np.uint8,
)


def _quadrant_image(colors: np.ndarray) -> np.ndarray:
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    half = SIZE // 2
    for q, (y, x) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        image[y : y + half, x : x + half] = colors[q]
    return image


def _sketch(n: int) -> np.ndarray:
    """Dark lines on white along the quadrant borders and one diagonal."""
    sketch = np.full((n, SIZE, SIZE, 1), 255, np.uint8)
    sketch[:, SIZE // 2 - 1 : SIZE // 2 + 1] = 30
    sketch[:, :, SIZE // 2 - 1 : SIZE // 2 + 1] = 30
    idx = np.arange(SIZE)
    sketch[:, idx, idx] = 60
    return sketch


def _points(image: np.ndarray, boxes) -> np.ndarray:
    """Point hints of the image's own (flat) colour in each (top, left, size) box."""
    return H.render_points(
        [(t, left, t + s, left + s, tuple(int(v) for v in image[t, left])) for t, left, s in boxes],
        image.shape[:2],
    )


BOXES = [
    [(2, 2, 3), (20, 22, 5), (5, 18, 1)],
    [(24, 3, 2), (9, 25, 4)],
    [],  # an image without hints adds nothing
]


def _batch(method: str) -> dict[str, np.ndarray]:
    color = np.stack([_quadrant_image(c) for c in QUADRANTS])
    batch = {"color": color, "sketch": _sketch(len(color))}
    points = np.stack([_points(c, b) for c, b in zip(color, BOXES, strict=True)])
    if method in ("points", "strokes"):
        batch["hints"] = points
    elif method == "scribbles":
        batch["hints"] = np.stack([H.scribbles_on_paper(p) for p in points])
    elif method != "none":
        batch["hints"] = np.stack([H.make_hints(method, c) for c in color])
    return batch


def _config(tiny_config, method: str, task: str = "colorize"):
    c = tiny_config
    c.data.hints = method
    c.task = task
    return c


def _python(tree):
    return jax.tree.map(lambda v: np.asarray(v).item(), jax.device_get(tree))


def _scores(config, batch, predictions, valid=None) -> evaluator.Scores:
    condition, target = inputs.model_inputs(batch, config)
    predictions = {k: (target if v is None else v) for k, v in predictions.items()}
    n = len(batch["color"])
    valid = np.ones(n, bool) if valid is None else valid
    sums = jax.jit(lambda *args: evaluator.batch_sums(*args, config))(
        predictions, condition, target, valid
    )
    return evaluator.Scores.from_sums(_python(sums), int(valid.sum()))


def _unit(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 127.5 - 1.0


@pytest.mark.parametrize("method", ["points", "strokes", "scribbles", "palette", "blur", "none"])
def test_a_perfect_output_keeps_every_hint_and_beats_every_baseline(tiny_config, method):
    config = _config(tiny_config, method)
    scores = _scores(config, _batch(method), {evaluator.PAIRED: None})
    paired = scores.columns[evaluator.PAIRED]
    assert set(scores.baselines) == set(baselines.names(config))
    assert scores.best_baseline in scores.baselines
    best = max(b["psnr"] for b in scores.baselines.values())
    assert paired["gain_db"] == pytest.approx(paired["psnr"] - best) and paired["gain_db"] > 0
    if method in ("blur", "none"):  # no colour at a known pixel: no hint fidelity
        assert "hint_error" not in paired and not scores.target
    else:
        assert paired["hint_error"] == 0.0
        assert scores.target["hint_error"] == 0.0  # these hints are the target's exact colours


def test_baseline_images_are_what_they_claim(tiny_config):
    config = _config(tiny_config, "points")
    batch = _batch("points")
    condition, target = inputs.model_inputs(batch, config)
    images = {k: np.asarray(v) for k, v in baselines.images(condition, target, config).items()}
    assert list(images) == ["grey", "mean_color", "sketch+hints"]
    levels = lambda x: np.round((x + 1) * 127.5)  # noqa: E731
    assert (levels(images["grey"]) == 128).all()
    means = batch["color"].reshape(3, -1, 3).mean(axis=1) / 127.5 - 1
    np.testing.assert_allclose(
        images["mean_color"], np.broadcast_to(means[:, None, None], (3, SIZE, SIZE, 3)), atol=1e-5
    )
    mask = batch["hints"][..., 3] == 255
    pasted = np.where(mask[..., None], batch["hints"][..., :3], batch["sketch"])
    np.testing.assert_array_equal(levels(images["sketch+hints"]), pasted)
    assert mask.sum() == 3 * 3 + 5 * 5 + 1 + 2 * 2 + 4 * 4  # the hints were pasted, not lost

    # scribbles: the pixels that are not paper are the hints.
    config = _config(tiny_config, "scribbles")
    scribbles = _batch("scribbles")
    condition, target = inputs.model_inputs(scribbles, config)
    got = levels(np.asarray(baselines.images(condition, target, config)["sketch+hints"]))
    ink = (scribbles["hints"] <= H.PAPER_LEVEL).any(axis=-1)
    assert ink.sum() == mask.sum() - 4 * 4  # the (250, 250, 250) point reads as paper
    np.testing.assert_array_equal(
        got, np.where(ink[..., None], scribbles["hints"], scribbles["sketch"])
    )

    # palette and blur: the hint image itself (palette: plane 1, each band's top colour).
    for method in ("palette", "blur"):
        config = _config(tiny_config, method)
        b = _batch(method)
        condition, target = inputs.model_inputs(b, config)
        got = np.asarray(baselines.images(condition, target, config)["hints"])
        np.testing.assert_array_equal(levels(got), b["hints"][..., :3])
    palette = _batch("palette")
    for i, image in enumerate(palette["color"]):  # plane 1: each band's most frequent colour
        bands = palette["hints"][i, [0, 8, 16, 24], 0, :3]
        np.testing.assert_array_equal(bands, H.palette_colors(image)[:, 0])


def test_sketch_task_gets_only_flat_baselines(tiny_config):
    config = _config(tiny_config, "none", task="sketch")
    batch = _batch("none")
    condition, target = inputs.model_inputs(batch, config)
    assert target.shape[-1] == 1 and baselines.names(config) == ("grey", "mean_color")
    assert hint_fidelity.method(config) is None
    scores = _scores(config, batch, {evaluator.PAIRED: None})
    assert set(scores.baselines) == {"grey", "mean_color"} and not scores.target


def test_an_output_that_ignores_the_hints_has_a_large_hint_error(tiny_config):
    config = _config(tiny_config, "points")
    batch = _batch("points")
    mask = batch["hints"][..., 3] == 255
    # The target with the hinted pixels recoloured (inverted): a high PSNR, clicks ignored.
    recoloured = np.where(mask[..., None], 255 - batch["color"], batch["color"])
    grey = np.full_like(batch["color"], 128)
    scores = _scores(
        config,
        batch,
        {"recoloured": _unit(recoloured), "grey": _unit(grey), evaluator.PAIRED: None},
    )
    colors = batch["hints"][..., :3][mask].astype(float)
    expected = {
        "recoloured": np.abs(255 - 2 * colors).mean(),
        "grey": np.abs(128 - colors).mean(),
    }
    for name, value in expected.items():
        assert scores.columns[name]["hint_error"] == pytest.approx(value, abs=1e-3)
        assert value > 60
    assert scores.columns["recoloured"]["psnr"] > scores.baselines["sketch+hints"]["psnr"]
    # The flat grey baseline scores the same as a grey output; sketch+hints keeps every hint.
    assert scores.baselines["grey"]["hint_error"] == pytest.approx(expected["grey"], abs=1e-3)
    assert scores.baselines["sketch+hints"]["hint_error"] == 0.0


def test_pooled_hint_error_leaves_padding_rows_out(tiny_config):
    """Rows 3 and 4 pad the batch (the evaluator's last batch): their pixels must not count."""
    config = _config(tiny_config, "strokes")
    batch = _batch("strokes")
    rng = np.random.default_rng(0)
    strokes = [H.stroke_hints(_quadrant_image(QUADRANTS[i % 3]), rng) for i in range(2)]
    batch = {
        "color": np.concatenate([batch["color"], batch["color"][:2]]),
        "sketch": np.concatenate([batch["sketch"], batch["sketch"][:2]]),
        "hints": np.concatenate([batch["hints"], np.stack(strokes)]),
    }
    valid = np.array([True, True, True, False, False])
    output = rng.integers(0, 256, batch["color"].shape, dtype=np.uint8)
    # The padding rows are as far from their hints as can be: counted, they would raise the mean.
    output[3:] = np.where(batch["hints"][3:, ..., :3] < 128, 255, 0)
    assert (batch["hints"][3:, ..., 3] == 255).any()
    scores = _scores(config, batch, {evaluator.PAIRED: _unit(output)}, valid)
    mask = (batch["hints"][..., 3] == 255) & valid[:, None, None]
    errors = np.abs(output.astype(float) - batch["hints"][..., :3])[mask]
    assert scores.columns[evaluator.PAIRED]["hint_error"] == pytest.approx(errors.mean(), rel=1e-5)
    everything = np.abs(output.astype(float) - batch["hints"][..., :3])[
        batch["hints"][..., 3] == 255
    ]
    assert abs(everything.mean() - errors.mean()) > 1.0  # the padding would have changed it
    assert scores.num_images == 3


def _few_colour_images(n: int, rng) -> np.ndarray:
    """Blocks of a few colours (equal counts tie; one band holds a single colour)."""
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    picks = rng.integers(0, 6, (n, 8, 8))
    images = np.repeat(np.repeat(palette[picks], 4, axis=1), 4, axis=2)
    images[0, :8] = palette[0]  # band 0 of image 0: one colour (repeated in the other planes)
    images[1, :, :16] = palette[1]  # exact ties: half of each band is palette[1]
    images[1, :, 16:] = palette[2]
    return images


def test_palette_fidelity_matches_the_host_palette_colors(tiny_config):
    rng = np.random.default_rng(0)
    color = _few_colour_images(4, rng)
    color[3] = rng.integers(0, 256, color[3].shape, dtype=np.uint8)  # many colours
    device = np.asarray(jax.jit(hint_fidelity.palette_colors)(color.astype(np.float32)))
    for i, image in enumerate(color):
        np.testing.assert_array_equal(device[i], H.palette_colors(image), err_msg=str(i))

    config = _config(tiny_config, "palette")
    batch = {
        "color": color,
        "sketch": _sketch(4),
        "hints": np.stack([H.palette_hints(c) for c in color]),
    }
    output = np.roll(color, 1, axis=0)
    output[0] = _few_colour_images(4, np.random.default_rng(1))[2]
    scores = _scores(config, batch, {evaluator.PAIRED: _unit(output)})
    total = 0.0
    for target, out in zip(color, output, strict=True):
        given = H.palette_colors(target).astype(float)
        own = H.palette_colors(out).astype(float)
        distance = np.abs(given[:, :, None] - own[:, None]).sum(axis=-1)
        total += distance.min(axis=-1).sum()
    expected = total / (3 * len(color) * H.PALETTE_BANDS * H.PALETTE_TOP)
    assert expected > 10
    assert scores.columns[evaluator.PAIRED]["hint_error"] == pytest.approx(expected, rel=1e-6)


# --- the sample sheet --------------------------------------------------------------------------


def _cell(sheet, i, j, side):
    top = sample_sheet.HEADER + sample_sheet.PAD + i * (side + sample_sheet.PAD)
    left = sample_sheet.LABEL_WIDTH + sample_sheet.PAD + j * (side + sample_sheet.PAD)
    return sheet[top : top + side, left : left + side]


def _enlarged(image, k):
    image = np.repeat(np.repeat(image, k, axis=0), k, axis=1)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def test_the_sample_sheet_has_a_row_per_image_and_shows_the_inputs():
    batch = _batch("points")
    rng = np.random.default_rng(0)
    samples = {
        "sketch": batch["sketch"],
        "hints": batch["hints"],
        "output": rng.integers(0, 256, batch["color"].shape, dtype=np.uint8),
        "target": batch["color"],
    }
    columns = sample_sheet.sheet_columns(samples, "points")
    assert [name for name, _ in columns] == ["sketch", "hints", "output", "target"]
    sheet = sample_sheet.sample_sheet(columns, [("#0", "1.0 dB"), ("#1", "2"), ("#2", "3")])
    k = sample_sheet.cell_scale(SIZE)
    side, pad = SIZE * k, sample_sheet.PAD
    assert side >= sample_sheet.MIN_CELL
    assert sheet.shape == (
        sample_sheet.HEADER + 3 * (side + pad) + pad,
        sample_sheet.LABEL_WIDTH + 4 * (side + pad) + pad,
        3,
    )
    for i in range(3):
        np.testing.assert_array_equal(_cell(sheet, i, 0, side), _enlarged(batch["sketch"][i], k))
        np.testing.assert_array_equal(_cell(sheet, i, 2, side), _enlarged(samples["output"][i], k))
        np.testing.assert_array_equal(_cell(sheet, i, 3, side), _enlarged(batch["color"][i], k))
        label = sheet[
            sample_sheet.HEADER + i * (side + pad) : sample_sheet.HEADER + (i + 1) * (side + pad),
            : sample_sheet.LABEL_WIDTH,
        ]
        assert (label < 128).any(), f"row {i} has no label"
    for j in range(4):  # a header over each column
        left = sample_sheet.LABEL_WIDTH + pad + j * (side + pad)
        assert (sheet[: sample_sheet.HEADER, left : left + side] < 128).any(), j

    # The hints column: each hint in its colour, ringed, over a faded sketch.
    panel = sample_sheet.hint_panel(batch["hints"], batch["sketch"], "points")
    mask = batch["hints"][..., 3] == 255
    np.testing.assert_array_equal(panel[mask], batch["hints"][..., :3][mask])
    np.testing.assert_array_equal(_cell(sheet, 0, 1, side), _enlarged(panel[0], k))
    assert (panel[0, 1, 1:6] == sample_sheet.OUTLINE).all()  # the ring above the 3x3 point
    # Image 2 has no hint: its panel is the sketch, faded.
    faded = 255 - (255 - batch["sketch"][2].astype(float)) * sample_sheet.SKETCH_FADE
    np.testing.assert_allclose(panel[2], np.repeat(faded, 3, axis=-1), atol=0.5)
    assert batch["sketch"][2].min() == 30 and panel[2].min() > 180


def test_sheet_columns_for_each_kind_of_model():
    batch = _batch("palette")
    base = {"output": batch["color"], "target": batch["color"]}
    palette = sample_sheet.sheet_columns(
        base | {"sketch": batch["sketch"], "hints": batch["hints"]}, "palette"
    )
    panel = dict(palette)["hints"]
    quarter = SIZE // H.PALETTE_TOP
    for plane in range(H.PALETTE_TOP):  # plane i fills the i-th quarter: a swatch grid
        strip = slice(plane * quarter, (plane + 1) * quarter)
        np.testing.assert_array_equal(
            panel[:, :, strip], batch["hints"][:, :, strip, 3 * plane : 3 * plane + 3]
        )
    reference = sample_sheet.sheet_columns(
        base | {"sketch": batch["sketch"], "reference": batch["color"]}, "none"
    )
    assert [n for n, _ in reference] == ["sketch", "reference", "output", "target"]
    sketch_task = sample_sheet.sheet_columns(
        {"color": batch["color"], "output": batch["sketch"], "target": batch["sketch"]}, "none"
    )
    assert [n for n, _ in sketch_task] == ["color", "output", "target"]
    blur = _batch("blur")
    got = dict(
        sample_sheet.sheet_columns(
            base | {"sketch": blur["sketch"], "hints": blur["hints"]}, "blur"
        )
    )
    np.testing.assert_array_equal(got["hints"], blur["hints"])
