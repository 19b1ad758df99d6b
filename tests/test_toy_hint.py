"""The extension point for hint methods: a `data.hints` method defined in this file alone (its
training draw, how a user's drawing and points become its channels, which pixels carry colour,
its help text) is registered, trained (with the hint loss, which reads its pixel rule), evaluated
(hint fidelity, the sketch+hints baseline), exported, colorized by `python -m jaxcolor.colorize`'s
entry point and served by the FastAPI app, with no library module edited or naming it.

Registration is per process, as for network families (tests/test_toy_family.py): colorize and
the server run here in-process (the entry point's `main`, the app under Starlette's TestClient).
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving import png, read_png

from jaxcolor import colorize, inference
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import pipeline
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.data.sources import SyntheticCartoonSource
from jaxcolor.evaluation import evaluator
from jaxcolor.export import exporter
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.serve.app import create_app
from jaxcolor.training import config_checks

PAPER = 245  # a drawing's pixels with every channel above this are paper
ON = 255
SIDE = 4  # the toy reveals one SIDE x SIDE square


def toy_hints(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training's draw: one SIDE x SIDE square at a random place, holding the square's mean
    colour: uint8 (H, W, 4) R, G, B, mask."""
    h, w = image.shape[:2]
    top, left = int(rng.integers(0, h - SIDE + 1)), int(rng.integers(0, w - SIDE + 1))
    out = np.zeros((h, w, 4), np.uint8)
    square = image[top : top + SIDE, left : left + SIDE].reshape(-1, 3)
    out[top : top + SIDE, left : left + SIDE] = (*np.round(square.mean(0)).astype(int), ON)
    return out


def toy_from_drawing(drawing: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A user's drawing at the working size -> every painted pixel a hint of its own colour."""
    paint = (drawing <= PAPER).any(axis=-1)
    out = np.zeros((*hw, 4), np.uint8)
    out[paint, :3] = drawing[paint]
    out[paint, 3] = ON
    return out


def toy_pixels(hints):
    return hints[..., 3] == ON


TOY = hints_lib.HintSpec(
    name="toy_square",
    channels=4,
    make=toy_hints,
    user_input=hints_lib.DRAWING,
    from_user=toy_from_drawing,
    from_points=lambda points: points,  # R, G, B, mask patches are already its layout
    hinted_pixels=toy_pixels,
    help="a drawing of the sketch's size: one toy square of colour on white paper",
)


@pytest.fixture
def toy_registered():
    hints_lib.register(TOY)
    yield TOY
    hints_lib.unregister(TOY)


def _toy_config(tiny_config):
    c = tiny_config
    c.data.hints = "toy_square"
    c.loss.hint_weight = 1.0  # the hint loss at the spec's hinted pixels
    c.num_steps = 4
    return c


def test_unknown_until_registered(tiny_config):
    with pytest.raises(ConfigError, match=r"data.hints must be one of"):
        config_checks.validate(_toy_config(tiny_config))
    with pytest.raises(ValueError, match="Unknown data.hints 'toy_square'"):
        hints_lib.hint_spec("toy_square")


def test_a_hint_method_from_this_file_trains_exports_colorizes_and_serves(
    toy_registered, tiny_config, tmp_path
):
    config = _toy_config(tiny_config)
    config_checks.validate(config)
    assert "toy_square" in hints_lib.pixel_methods()  # so loss.hint_weight is allowed

    workdir = str(tmp_path / "run")
    state = train_and_evaluate(config, workdir)
    assert int(state.step) == config.num_steps
    report = evaluator.evaluate_checkpoint(workdir, split="val")
    metrics = next(iter(report["metrics"].values()))
    assert np.isfinite(metrics["hint_error"])  # hint fidelity by the spec's hinted pixels
    assert "sketch+hints" in report["baselines"]

    out = tmp_path / "export"
    exporter.export(workdir, str(out))
    model = inference.load(out, "cpu")
    assert model.hints == "toy_square" and model.config["inputs"]["hint_channels"] == 4

    # colorize: a drawing becomes the spec's channels; points too; no hints is refused with
    # the spec's help text.
    color = SyntheticCartoonSource(1, 32, seed=3)[0]
    sketch = np.repeat(inference.to_sketch(color), 3, axis=-1)
    drawing = np.full((32, 32, 3), 255, np.uint8)
    drawing[10:14, 8:20] = (200, 30, 40)
    (tmp_path / "sketch.png").write_bytes(png(sketch))
    (tmp_path / "drawing.png").write_bytes(png(drawing))
    colorize.main(
        [
            "--model", str(out), "--sketch", str(tmp_path / "sketch.png"),
            "--hints", str(tmp_path / "drawing.png"), "--out", str(tmp_path / "drawn.png"),
            "--device", "cpu",
        ]
    )  # fmt: skip
    sketch_u8 = inference.to_sketch(sketch)
    expected = model(sketch_u8, toy_from_drawing(drawing, (32, 32)))
    np.testing.assert_array_equal(read_png((tmp_path / "drawn.png").read_bytes()), expected)
    (pointed,) = inference.colorize_files(
        model, str(tmp_path / "sketch.png"), str(tmp_path / "p.png"), hint_points="5,6,#10c020"
    )
    clicks = hints_lib.points_from_clicks([(5, 6, (16, 192, 32))], (32, 32))
    np.testing.assert_array_equal(read_png(pointed.read_bytes()), model(sketch_u8, clicks))
    with pytest.raises(SystemExit, match="one toy square of colour"):
        colorize.main(
            ["--model", str(out), "--sketch", str(tmp_path / "sketch.png"),
             "--out", str(tmp_path / "none.png"), "--device", "cpu"]
        )  # fmt: skip

    # serve: /v1/info says what the model accepts, from the spec; the page's requests work.
    with TestClient(create_app(model)) as client:
        info = client.get("/v1/info").json()
        assert info["hints"] == "toy_square" and info["channels"] == 5
        assert info["hint_input"] == "drawing" and info["point_hints"] is True
        assert info["hint_map"] is False and "one toy square" in info["hints_image"]
        files = {"sketch": png(sketch), "hints": png(drawing)}
        served = client.post("/v1/colorize", files=files)
        assert served.status_code == 200, served.text
        np.testing.assert_array_equal(read_png(served.content), expected)
        shown = client.post("/v1/hints", files=files)
        assert shown.status_code == 200, shown.text
        np.testing.assert_array_equal(
            read_png(shown.content, "RGBA"), toy_from_drawing(drawing, (32, 32))
        )
        by_points = client.post(
            "/v1/colorize", files={"sketch": png(sketch)}, data={"hint_points": "5,6,#10c020"}
        )
        assert by_points.status_code == 200, by_points.text
        np.testing.assert_array_equal(read_png(by_points.content), model(sketch_u8, clicks))


# A data.source form and a sketch method from this file alone feed the pipeline, beside the
# hint method, in the main process and across Grain's worker processes.


class ToyFlatSource:
    """`data.source='toy_flat'`: n flat-coloured RGB images (decoded, so encoded=False)."""

    def __init__(self, n: int, hw: tuple[int, int], seed: int):
        self.n, self.hw, self.seed = n, hw, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> np.ndarray:
        rgb = np.random.default_rng((self.seed, index)).integers(0, 256, 3)
        return np.broadcast_to(rgb.astype(np.uint8), (*self.hw, 3)).copy()


def toy_flat_splits(config, arg: str):
    del arg
    hw = (config.image_size, config.image_size)
    return ToyFlatSource(32, hw, config.seed), ToyFlatSource(8, hw, config.seed + 1)


def toy_outline(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """A sketch method: a black 1 px frame on white paper."""
    del rng
    out = np.full((*image.shape[:2], 1), 255, np.uint8)
    out[0], out[-1], out[:, 0], out[:, -1] = 0, 0, 0, 0
    return out


TOY_SOURCE = pipeline.SourceSpec(
    "toy_flat", toy_flat_splits, "'toy_flat'", takes_argument=False, encoded=False
)


@pytest.fixture
def toy_data_registered(toy_registered):
    pipeline.register(TOY_SOURCE)
    sketch_lib.register("toy_outline", toy_outline)
    yield
    pipeline.unregister(TOY_SOURCE)
    sketch_lib.unregister("toy_outline")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_source_and_a_sketch_method_from_this_file_feed_the_pipeline(
    toy_data_registered, tiny_config, num_workers
):
    c = _toy_config(tiny_config)
    c.data.source = "toy_flat"
    c.data.sketch, c.data.sketch_augment = "toy_outline", False
    c.data.num_workers = num_workers
    config_checks.validate(c)
    train, val = pipeline.make_sources(c)
    assert isinstance(train, ToyFlatSource) and isinstance(val, ToyFlatSource)
    batch = next(iter(pipeline.train_dataset(c, train)))
    assert batch["sketch"].shape == (c.batch_size, 32, 32, 1)
    np.testing.assert_array_equal(batch["sketch"][0], toy_outline(batch["color"][0]))
    assert batch["hints"].shape == (c.batch_size, 32, 32, 4)
    # one SIDE x SIDE square each, of the image's own flat colour
    assert ((batch["hints"][..., 3] == ON).sum(axis=(1, 2)) == SIDE * SIDE).all()
    color = batch["color"][:, 0, 0]
    hinted = batch["hints"][..., :3][batch["hints"][..., 3] == ON].reshape(c.batch_size, -1, 3)
    np.testing.assert_array_equal(hinted, np.repeat(color[:, None], SIDE * SIDE, axis=1))
