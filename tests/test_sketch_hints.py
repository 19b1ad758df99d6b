"""Sketch extractors and hint generators: behaviour of each function, and the pipeline's widths."""

import cv2
import numpy as np
import pytest

from jaxcolor.core.errors import ConfigError
from jaxcolor.data import hints as H
from jaxcolor.data import sketch as S
from jaxcolor.data.sources import SyntheticCartoonSource


def _cartoon(size=64, seed=0):
    return SyntheticCartoonSource(1, size, seed=seed)[0]


def _line_image(size=64, width=2):
    image = np.full((size, size, 3), 255, np.uint8)
    cv2.line(image, (8, size // 2), (size - 9, size // 2), (0, 0, 0), width)
    return image


# ---------------------------------------------------------------------------------------------
# sketches


@pytest.mark.parametrize("gray", [0, 40, 128, 200, 255])
def test_xdog_of_a_flat_image_is_blank_for_any_parameters(gray):
    image = np.full((48, 64, 3), gray, np.uint8)
    rng = np.random.default_rng(0)
    # XDoG's epsilon can reach 0.01, so pure black (S = 0) counts as a line; any other flat
    # gray is paper. Sobel and high-pass are blank for every flat image.
    if gray > 0:
        for _ in range(20):
            assert (S.xdog(image, rng) == 255).all()
        assert (S.xdog(image) == 255).all()
    for extractor in (S.sobel, S.highpass):
        assert (extractor(image) == 255).all() and (extractor(image, rng) == 255).all()


@pytest.mark.parametrize("name", sorted(S.SKETCHES))
def test_a_black_line_on_white_survives_every_extractor(name):
    image = _line_image()
    rng = np.random.default_rng(1)
    for sketch in [S.SKETCHES[name](image)] + [S.SKETCHES[name](image, rng) for _ in range(10)]:
        assert sketch.shape == (64, 64, 1) and sketch.dtype == np.uint8
        band = sketch[30:35, 12:52, 0]  # the line (rows 31-33) and one pixel either side
        # Along the whole line every column has a dark pixel: the line is continuous.
        assert (band.min(axis=0) < 100).all(), name
        assert (sketch[:20, :, 0] == 255).all() and (sketch[45:, :, 0] == 255).all(), name


@pytest.mark.parametrize("spec", ["xdog", "sobel", "highpass", "xdog:0.7,sobel:0.2,highpass:0.1"])
def test_sketches_are_deterministic_given_the_seed(spec):
    image = _cartoon()
    a = [S.make_sketch(spec, image, np.random.default_rng(s)) for s in range(6)]
    b = [S.make_sketch(spec, image, np.random.default_rng(s)) for s in range(6)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # ... and the rng really varies them.
    assert any(not np.array_equal(a[0], x) for x in a[1:])


def test_without_rng_make_sketch_uses_the_fixed_defaults():
    image = _cartoon()
    np.testing.assert_array_equal(S.make_sketch("sobel:1,xdog:3", image), S.sobel(image))


def test_augmentations_keep_dtype_shape_and_range():
    sketch = S.highpass(_cartoon(96))  # soft grey lines
    rng = np.random.default_rng(2)
    far = cv2.erode((sketch[..., 0] == 255).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    for _ in range(100):
        out = S.augment(sketch, rng)
        assert out.shape == sketch.shape and out.dtype == np.uint8
        assert (out[..., 0][far] == 255).all()  # paper away from the lines stays paper


def _only(monkeypatch, **probabilities):
    for name in ("P_BINARIZE", "P_THICKEN", "P_THIN", "P_INTENSITY"):
        monkeypatch.setattr(S, name, probabilities.get(name, 0.0))


def test_each_augmentation_does_what_it_says(monkeypatch):
    sketch = S.highpass(_cartoon(96))
    s = sketch.astype(int)
    rng = np.random.default_rng(2)
    dark = lambda x: int((x < 128).sum())  # noqa: E731

    _only(monkeypatch)
    np.testing.assert_array_equal(S.augment(sketch, rng), sketch)
    _only(monkeypatch, P_BINARIZE=1.0)
    out = S.augment(sketch, rng)
    assert set(np.unique(out)) == {0, 255} and len(np.unique(sketch)) > 10
    _only(monkeypatch, P_THICKEN=1.0)
    out = S.augment(sketch, rng).astype(int)
    assert (out <= s).all() and dark(out) > 1.3 * dark(s)  # bolder lines
    _only(monkeypatch, P_THIN=1.0)
    out = S.augment(sketch, rng).astype(int)
    assert (out >= s).all() and dark(out) < 0.8 * dark(s)  # thinner lines
    _only(monkeypatch, P_INTENSITY=1.0)
    out = S.augment(sketch, rng).astype(int)
    lighter = s < 255
    assert (out >= s).all() and (out[lighter] > s[lighter]).any() and (out[~lighter] == 255).all()
    assert out.min() >= round(255 * (1 - S.INTENSITY_RANGE[1])) > 0  # no line stays black


def test_the_weighted_mix_honours_its_weights():
    image = np.full((16, 16, 3), 200, np.uint8)
    calls = []
    original = dict(S.SKETCHES)
    try:
        for name in original:
            S.SKETCHES[name] = lambda im, rng, name=name: calls.append(name) or original[name](im)
        rng = np.random.default_rng(3)
        n = 4000
        for _ in range(n):
            S.make_sketch("xdog:0.7,sobel:0.2,highpass:0.1", image, rng, augmented=False)
    finally:
        S.SKETCHES.update(original)
    for name, p in (("xdog", 0.7), ("sobel", 0.2), ("highpass", 0.1)):
        share = calls.count(name) / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (name, share)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("pencil", "unknown sketch method 'pencil'"),
        ("xdog:0.5,canny:0.5", "unknown sketch method 'canny'"),
        ("xdog:abc", "weight of 'xdog' must be a number"),
        ("xdog:-1,sobel:1", "weight of 'xdog' must be a number >= 0"),
        ("xdog:0,sobel:0", "weights sum to 0"),
        ("xdog,xdog", "listed twice"),
    ],
)
def test_bad_sketch_specs_are_config_errors_naming_the_key(spec, match):
    with pytest.raises(ConfigError, match="data.sketch=.*" + match):
        S.parse_sketch_mix(spec)


def test_parse_sketch_mix_normalises_weights():
    assert S.parse_sketch_mix("xdog:3,sobel:1") == (("xdog", "sobel"), (0.75, 0.25))
    assert S.parse_sketch_mix(" sobel ") == (("sobel",), (1.0,))


# ---------------------------------------------------------------------------------------------
# hints


def test_hint_channels_match_every_generator():
    image = _cartoon(40)
    for name, channels in H.HINT_CHANNELS.items():
        out = H.make_hints(name, image, np.random.default_rng(0))
        assert out.shape == (40, 40, channels) and out.dtype == np.uint8, name


def test_points_carry_the_patch_mean_colour_at_masked_pixels_and_zero_elsewhere():
    image = _cartoon(64, seed=5)
    rng = np.random.default_rng(4)
    seen = 0
    for _ in range(50):
        state = rng.bit_generator.state
        points = H.sample_points(image, rng)
        rng.bit_generator.state = state
        hints = H.point_hints(image, rng)
        expected = np.zeros((64, 64, 4), np.uint8)
        for top, left, bottom, right, rgb in points:
            assert 1 <= bottom - top == right - left <= 9
            mean = image[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
            np.testing.assert_array_equal(rgb, np.round(mean))
            expected[top:bottom, left:right] = (*rgb, 255)
        np.testing.assert_array_equal(hints, expected)
        mask = hints[..., 3] == 255
        assert set(np.unique(hints[..., 3])) <= {0, 255}
        assert (hints[~mask] == 0).all()
        seen += mask.any()
    assert seen > 30


def test_points_of_a_flat_patch_are_its_exact_colour():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:] = (12, 200, 99)
    hints = H.point_hints(image, np.random.default_rng(7))
    mask = hints[..., 3] == 255
    assert mask.any() and (hints[mask][:, :3] == (12, 200, 99)).all()


def test_point_counts_follow_zhang_et_al():
    image = np.full((32, 32, 3), 128, np.uint8)
    rng = np.random.default_rng(11)
    counts = np.array([len(H.sample_points(image, rng)) for _ in range(4000)])
    p_none = (counts == 0).mean()
    assert 0.10 <= p_none <= 0.15, p_none  # 1/8 = 0.125; sd over 4000 draws = 0.005
    assert 6.6 <= counts.mean() <= 7.4, counts.mean()  # 7; sd of the mean = 0.12
    # A geometric distribution: P(N = 1 | N >= 1) = 1/8 too (a Poisson with mean 7 gives 0.006).
    assert 0.09 <= (counts == 1).sum() / (counts >= 1).sum() <= 0.16


def test_strokes_take_their_colour_from_under_the_stroke_and_mask_matches():
    image = _cartoon(64, seed=2)
    rng = np.random.default_rng(5)
    empty = 0
    for _ in range(200):
        state = rng.bit_generator.state
        strokes = H.sample_strokes(image, rng)
        rng.bit_generator.state = state
        hints = H.stroke_hints(image, rng)
        union = np.zeros((64, 64), bool)
        expected = np.zeros((64, 64, 4), np.uint8)
        for line, width, rgb in strokes:
            assert 1 <= width <= 5
            under = H.stroke_mask(line, width, (64, 64))
            # The stroke's colour is the per-channel median of the ground truth under it.
            np.testing.assert_array_equal(rgb, np.round(np.median(image[under], axis=0)))
            union |= under
            expected[under] = (*rgb, 255)
        np.testing.assert_array_equal(hints[..., 3] == 255, union)
        np.testing.assert_array_equal(hints, expected)
        assert (hints[~union] == 0).all()
        empty += not strokes
    assert 10 <= empty <= 45  # P(no strokes) = 1/8 -> 25 of 200


RED, BLUE, BLACK = (200, 40, 40), (40, 60, 210), (0, 0, 0)


def _two_regions(size=64):
    """Left half red, right half blue, a black line (columns 31 and 32) between them, with light
    JPEG-like noise."""
    image = np.zeros((size, size, 3), np.uint8)
    image[:, : size // 2] = RED
    image[:, size // 2 :] = BLUE
    image[:, size // 2 - 1 : size // 2 + 1] = BLACK
    noise = np.random.default_rng(0).integers(-6, 7, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def _region_of(columns: np.ndarray) -> tuple[int, int, int]:
    """The one region of _two_regions that every column lies in (fails if they span two)."""
    regions = {RED if c <= 30 else BLACK if c <= 32 else BLUE for c in np.ravel(columns)}
    assert len(regions) == 1, sorted(np.ravel(columns))
    return regions.pop()


def test_points_stay_inside_one_colour_region():
    image = _two_regions()
    rng = np.random.default_rng(3)
    sizes, points = [], [p for _ in range(300) for p in H.sample_points(image, rng)]
    for top, left, bottom, right, rgb in points:
        region = _region_of(np.arange(left, right))  # no patch straddles the line
        assert np.abs(np.subtract(rgb, region)).max() <= 6, (rgb, region)
        sizes.append(bottom - top)
    # Patches away from the line keep Zhang et al.'s sizes; only those at it shrink.
    assert len(points) > 1000 and max(sizes) == 9 and np.mean(sizes) > 3


def test_strokes_stay_inside_one_colour_region_and_take_its_colour():
    image = _two_regions()
    rng = np.random.default_rng(8)
    strokes = [s for _ in range(300) for s in H.sample_strokes(image, rng)]
    lengths = []
    for line, _, rgb in strokes:
        region = _region_of(line[:, 0])  # the centre line never crosses into another region
        assert np.abs(np.subtract(rgb, region)).max() <= 6, (rgb, region)
        lengths.append(len(line) - 1)
    assert len(strokes) > 500 and max(lengths) == H.STROKE_SEGMENTS[1]


def test_palette_holds_each_bands_colours_ordered_by_frequency():
    image = np.zeros((40, 24, 3), np.uint8)
    # Band 0 (rows 0-9): red 120 px, green 72, blue 48; band 1: one colour; 2: five colours.
    image[0:5] = (255, 0, 0)
    image[5:8] = (0, 255, 0)
    image[8:10] = (0, 0, 255)
    image[10:20] = (100, 100, 100)
    for i, c in enumerate([(10, 20, 30), (40, 50, 60), (70, 80, 90), (1, 2, 3), (250, 250, 250)]):
        image[20 + 2 * i : 22 + 2 * i, : 24 - 4 * i] = c  # decreasing counts; the rest black
    image[30:40] = (36, 37, 38)
    planes = H.palette_hints(image)
    assert planes.shape == (40, 24, 12) and planes.dtype == np.uint8
    q = lambda c: tuple(v // 8 * 8 + 4 for v in c)  # noqa: E731
    bands = [
        [q((255, 0, 0)), q((0, 255, 0)), q((0, 0, 255)), q((255, 0, 0))],  # 3: top-1 repeats
        [q((100, 100, 100))] * 4,
        # 48 + 40 + 32 + 24 + 16 coloured pixels and 80 black ones: black comes first.
        [q((0, 0, 0)), q((10, 20, 30)), q((40, 50, 60)), q((70, 80, 90))],
        [q((36, 37, 38))] * 4,
    ]
    for band, rows in enumerate(np.array_split(np.arange(40), 4)):
        for plane in range(4):
            got = planes[rows, :, 3 * plane : 3 * plane + 3].reshape(-1, 3)
            assert (got == bands[band][plane]).all(), (band, plane, got[0])


def test_palette_colours_are_present_in_their_band():
    image = _cartoon(64, seed=9)
    colors = H.palette_colors(image)
    quantised = image // 8 * 8 + 4
    for band, rows in enumerate(np.array_split(quantised, 4, axis=0)):
        present, counts = np.unique(rows.reshape(-1, 3), axis=0, return_counts=True)
        freq = [counts[(present == c).all(axis=1)] for c in colors[band]]
        assert all(len(f) == 1 for f in freq), band
        assert [int(f[0]) for f in freq] == sorted((int(f[0]) for f in freq), reverse=True)
        assert int(freq[0][0]) == counts.max()


def test_hint_generators_are_deterministic_given_the_seed():
    image = _cartoon(48)
    for name in H.HINT_CHANNELS:
        a = H.make_hints(name, image, np.random.default_rng(3))
        np.testing.assert_array_equal(a, H.make_hints(name, image, np.random.default_rng(3)))


def test_blur_ignores_the_rng_and_keeps_its_output():
    image = _cartoon(64)
    expected = cv2.GaussianBlur(image, (0, 0), 20.0 * 64 / 256)
    np.testing.assert_array_equal(H.blur_hints(image, np.random.default_rng(1)), expected)
    np.testing.assert_array_equal(H.make_hints("blur", image), expected)


def test_inference_renderers_match_training():
    # A click renders the same square as a training patch of that size centred there.
    clicks = H.points_from_clicks([(10, 20, (1, 2, 3))], (32, 32), size=3)
    expected = H.render_points([(19, 9, 22, 12, (1, 2, 3))], (32, 32))
    np.testing.assert_array_equal(clicks, expected)
    # A drawing of training strokes on white paper reads back as exactly those hints (except
    # near-white strokes, which read as paper: documented in hints_from_drawing).
    image = _cartoon(64, seed=1)
    hints = H.stroke_hints(image, np.random.default_rng(8))
    drawing = np.where(hints[..., 3:] == 255, hints[..., :3], 255).astype(np.uint8)
    read = H.hints_from_drawing(drawing)
    dark = (hints[..., :3] <= H.PAPER_LEVEL).any(axis=-1) & (hints[..., 3] == 255)
    np.testing.assert_array_equal(read[dark], hints[dark])
    assert (read[hints[..., 3] == 0] == 0).all()


# ---------------------------------------------------------------------------------------------
# blur hints from a user's drawing (inference)


def _three_strokes(hw=(64, 96)):
    """White paper with three 3 px strokes of different colours -> drawing, colours, masks."""
    drawing = np.full((*hw, 3), 255, np.uint8)
    strokes = [
        ((8, 10), (28, 14), (224, 60, 49)),
        ((60, 45), (85, 50), (40, 170, 60)),
        ((15, 50), (30, 55), (30, 90, 240)),
    ]
    masks = []
    for start, end, color in strokes:
        mask = np.zeros(hw, np.uint8)
        cv2.line(mask, start, end, 1, 3)
        masks.append(mask.astype(bool))
        drawing[masks[-1]] = color
    return drawing, [np.array(color) for *_, color in strokes], masks


def test_a_drawing_without_paper_is_blurred_exactly_as_in_training():
    image = _cartoon(64, seed=2)
    np.testing.assert_array_equal(H.blur_hints_from_drawing(image), H.blur_hints(image))
    # A paper pixel is filled from the paint around it: the map stays training's blur.
    drawing = image.copy()
    drawing[40, 20] = 255
    assert np.abs(H.blur_hints_from_drawing(drawing).astype(int) - H.blur_hints(image)).max() <= 1


def test_three_strokes_spread_into_a_dense_smooth_map_of_their_colours():
    drawing, colors, masks = _three_strokes()
    with np.errstate(all="raise"):  # a 0 / 0 (NaN) anywhere raises instead of hiding
        got = H.blur_hints_from_drawing(drawing)
    assert got.shape == drawing.shape and got.dtype == np.uint8
    values = got.astype(int)
    for color, mask in zip(colors, masks, strict=True):
        near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert np.abs(values[near] - color).max() <= 4
    # Every other pixel mixes the strokes' colours (so none is the white paper).
    assert ((values >= np.min(colors, 0)) & (values <= np.max(colors, 0))).all()
    assert not (got > H.PAPER_LEVEL).all(-1).any()
    # As smooth as a training cue: no step between neighbours steeper than a blurred edge.
    sigma = H.blur_sigma(got.shape[:2])
    edge = np.ptp(colors, axis=0).max() / (sigma * np.sqrt(2 * np.pi))
    assert max(np.abs(np.diff(values, axis=axis)).max() for axis in (0, 1)) <= edge + 2


def test_the_map_blurs_with_the_training_sigma_at_any_size():
    drawing, *_ = _three_strokes()
    small = H.blur_hints_from_drawing(drawing)
    large = H.blur_hints_from_drawing(
        cv2.resize(drawing, (192, 128), interpolation=cv2.INTER_NEAREST)
    )
    upscaled = cv2.resize(small, (192, 128), interpolation=cv2.INTER_LINEAR)
    assert np.abs(large.astype(int) - upscaled).max() <= 2


def test_a_drawing_without_paint_is_refused():
    paper = np.full((32, 48, 3), H.PAPER_LEVEL + 1, np.uint8)
    with pytest.raises(ValueError, match="no paint"):
        H.blur_hints_from_drawing(paper)


# ---------------------------------------------------------------------------------------------
# pipeline


@pytest.mark.parametrize("num_workers", [0, 2])  # in-process, and across Grain's workers
@pytest.mark.parametrize("hints", sorted(H.HINT_CHANNELS))
def test_pipeline_batches_have_the_channels_of_each_hint_kind(tiny_config, hints, num_workers):
    from jaxcolor.data import pipeline
    from jaxcolor.data.hints import condition_channels

    c = tiny_config
    c.data.hints = hints
    c.data.sketch = "xdog:0.5,sobel:0.3,highpass:0.2"
    c.data.num_workers = num_workers
    train, val = pipeline.make_sources(c)
    batch = next(iter(pipeline.train_dataset(c, train)))
    per_process = c.batch_size  # one process in tests
    assert batch["sketch"].shape == (per_process, 32, 32, 1)
    if H.HINT_CHANNELS[hints]:
        assert batch["hints"].shape == (per_process, 32, 32, H.HINT_CHANNELS[hints])
        assert batch["hints"].dtype == np.uint8
    else:  # "none" ships no zero-channel array (shared memory between processes has none)
        assert "hints" not in batch
    assert condition_channels(c) == 1 + H.HINT_CHANNELS[hints]
    # Evaluation examples are random too, but the same every time.
    a, b = pipeline.validation_batch(c, val), pipeline.validation_batch(c, val)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_config_checks_name_data_sketch_and_data_hints(tiny_config):
    from jaxcolor.training import config_checks

    tiny_config.data.sketch = "xdog:0.8,sobel:0.2"
    config_checks.validate(tiny_config)
    tiny_config.data.sketch = "xdog:0.8,canny:0.2"
    with pytest.raises(ConfigError, match="data.sketch"):
        config_checks.validate(tiny_config)
    tiny_config.data.sketch = "xdog"
    tiny_config.data.hints = "scribble"
    with pytest.raises(ConfigError, match="data.hints"):
        config_checks.validate(tiny_config)


def test_a_short_training_run_with_point_hints(tiny_config, tmp_path):
    import jax

    from jaxcolor.run.loop import train_and_evaluate

    c = tiny_config
    c.data.hints = "points"
    c.data.sketch = "xdog:0.7,sobel:0.2,highpass:0.1"
    c.num_steps = 2
    c.model.discriminator.ndf = 6  # not 8, which is the discriminator's expected input width
    state = jax.device_get(train_and_evaluate(c, str(tmp_path)))
    # The generator's first convolution reads the sketch + R, G, B, mask; the discriminator's
    # the same 5 channels plus the 3 colour channels.
    in_channels = lambda params: {x.shape[2] for x in jax.tree.leaves(params) if x.ndim == 4}  # noqa: E731
    assert 5 in in_channels(state.g.params) and 8 in in_channels(state.d.params)
    assert {4, 7}.isdisjoint(in_channels(state.g.params) | in_channels(state.d.params))  # blur
