"""`python -m jaxcolor.bench quality`: the recipe trained per hint method on an image folder, its
held-out split scored beside the baselines, the table assembled from every method's record; the
training budget's arithmetic; the command-line mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
from conftest import REPO, load_config

from jaxcolor import bench
from jaxcolor import config as base_config
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import sources
from jaxcolor.evaluation import sample_sheet
from jaxcolor.run import quality

CPU128 = str(REPO / "configs" / "cpu128.py")
# The recipe at 32 px with a shallow, narrow U-Net: compiling dominates, so keep it small.
SMALL = [
    "--config.image_size=32",
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.model.generator.num_downs=3",
    "--config.model.generator.ngf=8",
    "--config.data.val_fraction=0.25",  # 6 of 24 images held out
]
SAMPLES = 4
RECORD_KEYS = {
    "method", "config", "argument", "overrides", "images", "num_steps", "batch_size",
    "train_minutes", "steps_per_s", "eval", "sheet", "jaxcolor", "date", "machine",
}  # fmt: skip


def _write_images(root, n: int = 24):
    """`n` synthetic cartoons as PNG files, a few in a subfolder (the folder is read
    recursively)."""
    images = sources.SyntheticCartoonSource(n, 48, seed=7)
    for i in range(n):
        path = root / ("sub" if i < 3 else "") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR))
    return root


def _quality(*args: str, cwd, cache) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, on the one CPU device a machine has
    (the 8 fake devices of the other tests would only add compile time here); every compiled
    function goes to the session's cache, for the next invocation."""
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_COMPILATION_CACHE_DIR=str(cache))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-m", "jaxcolor.bench", "quality", "--config", CPU128, *args, *SMALL],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _table(path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """quality.md's header and its rows by hint method, as cell texts."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header = cells[0]
    return header, {row[0]: dict(zip(header, row, strict=True)) for row in cells[2:]}  # past ---


def _sheet_rows(path) -> int:
    image = cv2.imread(str(path))
    side = 32 * sample_sheet.cell_scale(32)
    rows, rest = divmod(
        image.shape[0] - sample_sheet.HEADER - sample_sheet.PAD, side + sample_sheet.PAD
    )
    assert rest == 0, image.shape
    return rows


@pytest.mark.slow
def test_quality_trains_each_method_and_assembles_one_table(tmp_path, compile_cache):
    images, out = _write_images(tmp_path / "images"), tmp_path / "out"
    args = ["--images", str(images), "--steps", "2", "--out", str(out), "--samples", str(SAMPLES)]
    done = _quality(*args, "--hints", "blur,points", cwd=tmp_path, cache=compile_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    # A line per phase, and the training loop's own lines (absl INFO, as jaxcolor.train).
    for line in (
        "[1/2] blur: training budget: --steps 2",
        "[1/2] blur: training 2 steps into",
        "step 2/2 (100%)",
        "Done at step 2.",
        "[2/2] points: trained in",
        f"[2/2] points: wrote {out / 'points.json'}",
    ):
        assert line in done.stderr, (line, done.stderr[-3000:])
    assert "before flag parsing" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary == json.loads((out / "quality.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["blur", "points"]

    header, rows = _table(out / "quality.md")
    assert header == [
        "hints", "PSNR", "SSIM", "hint error", "best baseline", "gain (dB)", "grey PSNR",
        "mean_color PSNR", "hints PSNR", "sketch+hints PSNR", "target hint error", "steps",
        "training (min)",
    ]  # fmt: skip
    assert list(rows) == ["blur", "points"]
    blur, points = rows["blur"], rows["points"]
    assert blur["hint error"] == blur["sketch+hints PSNR"] == blur["target hint error"] == "-"
    assert points["hints PSNR"] == "-" and float(points["hint error"]) > 0
    assert float(points["sketch+hints PSNR"]) > 0 and float(points["target hint error"]) >= 0
    assert blur["steps"] == points["steps"] == "2"
    legend = (out / "quality.md").read_text()
    assert "a flat 50 % grey image" in legend and "pooled over every hinted pixel" in legend

    for method, baselines in (("blur", "hints"), ("points", "sketch+hints")):
        record = json.loads((out / f"{method}.json").read_text())
        assert RECORD_KEYS <= set(record), RECORD_KEYS - set(record)
        assert (record["method"], record["argument"], record["config"]) == (method, method, CPU128)
        assert record["images"] == str(images) and record["overrides"] == SMALL
        assert record["num_steps"] == 2 and record["batch_size"] == 8
        assert record["calibration"] is None and record["budget"] == {"steps": 2}
        # The run's schedule was scaled: checkpoints at the recipe's share of 2 steps.
        every = quality.scaled(load_config("cpu128", method), 2).checkpoint_every
        saved = sorted(int(p.name) for p in (out / method / "checkpoints").iterdir())
        assert saved == sorted({s for s in (1, 2) if s % every == 0} | {2})
        assert record["machine"]["cpus"] == os.cpu_count() and record["machine"]["jax_devices"] == 1
        report = record["eval"]
        assert report["split"] == "val" and report["step"] == 2 and report["num_images"] == 6
        model = report["metrics"]["paired"]
        assert model["gain_db"] == pytest.approx(
            model["psnr"] - report["baselines"][report["best_baseline"]]["psnr"]
        )
        assert set(report["baselines"]) == {"grey", "mean_color", baselines}
        assert float(rows[method]["PSNR"]) == pytest.approx(model["psnr"], abs=0.01)
        assert record["sheet"] == str(out / f"{method}-sheet.png")
        assert _sheet_rows(record["sheet"]) == SAMPLES
    points_report = json.loads((out / "points.json").read_text())["eval"]
    assert "hint_error" in points_report["metrics"]["paired"]
    assert "hint_error" in points_report["target"]

    # Another method into the same folder adds its row; a method already there is refused.
    again = _quality(*args, "--hints", "none", cwd=tmp_path, cache=compile_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[1/1] none: training 2 steps" in again.stderr
    header_after, rows_after = _table(out / "quality.md")
    assert list(rows_after) == ["blur", "points", "none"] and header_after == header
    assert rows_after["blur"] == blur  # assembled from blur.json, not retrained
    assert [r["method"] for r in json.loads(again.stdout)["rows"]] == ["blur", "points", "none"]
    with pytest.raises(SystemExit) as exit_:
        bench.main(["quality", "--config", CPU128, *args, "--hints", "none", *SMALL])
    assert "none already holds a none run; remove it" in str(exit_.value.code)


def _schedule_config():
    c = base_config.get_config()
    c.num_steps, c.batch_size, c.eval_batch_size = 1_000, 8, 8
    c.eval_every, c.checkpoint_every, c.eval_split_every = 250, 250, 1_000
    c.eval_max_images, c.optimizer.decay_steps = 0, 400
    return c


def test_minutes_become_steps_from_the_rate_and_schedules_keep_their_share():
    c = _schedule_config()
    rate = quality.Rate(step_s=0.5, compile_s=12.0, forward_share=0.25)
    # Images scored: the fixed batch at step 0 and every 250 steps (5 x 8), the whole split of
    # 40 once (5 batches of 8): 80 images, each at a quarter of a training image's 0.5 / 8 s.
    assert quality.evaluated_images(c, val_images=40) == 80
    # Compiling the step (12 s) and each of the two evaluations at a quarter of that: 18 s.
    assert quality.overhead_seconds(c, rate, val_images=40) == pytest.approx(18 + 80 / 64)
    steps = quality.steps_for_minutes(c, 10, rate, val_images=40)
    assert steps == 1161  # floor((600 - 19.25) / 0.5)

    run = quality.scaled(c, steps)
    assert run.num_steps == 1161
    assert run.optimizer.decay_steps == 464  # 400 of 1,000 steps: the same share
    assert run.eval_every == run.checkpoint_every == 290  # 250 / 1,000 of 1,161, rounded
    assert run.eval_split_every == 1161  # at the end, as the recipe's
    assert c.num_steps == 1_000 and c.eval_every == 250  # the recipe itself is left alone

    c.eval_split_every, c.optimizer.decay_steps = 0, 0  # off stays off
    short = quality.scaled(c, 2)
    assert short.eval_split_every == short.optimizer.decay_steps == 0
    assert short.eval_every == short.checkpoint_every == 1  # at least every step
    assert quality.overhead_seconds(c, rate, val_images=40) == pytest.approx(15 + 40 / 64)

    with pytest.raises(ConfigError, match=r"--minutes 0.1: compiling and evaluating alone take"):
        quality.steps_for_minutes(c, 0.1, rate, val_images=40)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--images: give the folder of colour images"),
        (["--images", "{tmp}/nope"], "--images {tmp}/nope: no such folder; pass --images DIR"),
        (["--images", "{tmp}/empty"], "--images {tmp}/empty: no images (.jpg, .jpeg, .png"),
        (["--images", "{images}", "--hints", "blur,dots"], "unknown hint method 'dots'; give"),
        (["--images", "{images}", "--minutes", "5", "--steps", "9"], "exclude each other"),
        (
            ["--images", "{images}", "--config", str(REPO / "configs" / "tiny.py")],
            "tiny.py: its get_config() takes no argument, so it cannot be trained per hint",
        ),
        (
            ["--images", "{images}", "--config", str(REPO / "configs" / "reference.py")],
            "reference.py:blur trains data.hints='none', so its argument is not the hint method",
        ),
        (["--images", "{images}", "--config.num_steps=5"], "sets num_steps from --steps N"),
        (["--images", "{images}", "--config.batch_szie=5"], "did you mean --config.batch_size"),
    ],
)
def test_mistakes_are_one_line_naming_the_option(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    images = _write_images(tmp_path / "images", 2)
    fill = lambda s: s.format(tmp=tmp_path, images=images)  # noqa: E731
    with pytest.raises(SystemExit) as exit_:
        bench.main(["quality", "--config", CPU128, *map(fill, args)])
    text = str(exit_.value.code)
    assert text.startswith("jaxcolor.bench: error: ") and "\n" not in text, text
    assert fill(message) in text, text


def test_default_config_is_the_cpu_recipe_here_or_beside_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the checkout's, beside the package
    assert bench._quality_config(None) == CPU128
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "cpu128.py").write_text((REPO / "configs" / "cpu128.py").read_text())
    assert bench._quality_config(None) == "configs/cpu128.py"
