"""End to end: train_and_evaluate learns, logs to TensorBoard, checkpoints and resumes."""

import gzip
import json
import logging
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor.core.errors import ConfigError
from jaxcolor.run.loop import train_and_evaluate


def _events(workdir: pathlib.Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(
        str(workdir / "tensorboard"), size_guidance={event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    return acc


def _scalar(acc, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_training_lowers_validation_l1_and_writes_tensorboard(tiny_config, tmp_path):
    c = tiny_config
    c.batch_size = 16
    c.num_steps = 200
    c.log_every = 20
    c.eval_every = 100
    c.checkpoint_every = 100
    c.model.generator.ngf = 16
    c.model.discriminator.ndf = 16
    c.data.num_synthetic = 512
    c.profile.start_step, c.profile.num_steps = 150, 2  # a jax.profiler trace of steps 150, 151
    state = train_and_evaluate(c, str(tmp_path))
    assert int(state.step) == 200
    # TensorBoard's Profile tab reads LOGDIR/plugins/profile/<run>/<host>.xplane.pb.
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
    # Each profiled step is a StepTraceAnnotation, which the Profile tab's overview page splits
    # the trace by (jax.profiler writes the same events as Chrome trace JSON next to it).
    (chrome,) = traces[0].parent.glob("*.trace.json.gz")
    events = json.loads(gzip.decompress(chrome.read_bytes()))["traceEvents"]
    steps = sorted(int(e["args"]["step_num"]) for e in events if e.get("name") == "train")
    assert steps == [150, 151]

    acc = _events(tmp_path)
    val_l1 = _scalar(acc, "val/l1")
    assert sorted(val_l1) == [0, 100, 200]
    # A real learning signal, far beyond noise: the untrained generator scores ~0.5.
    assert val_l1[200] < 0.6 * val_l1[0], val_l1
    assert _scalar(acc, "val/psnr")[200] > _scalar(acc, "val/psnr")[0] + 3.0

    tags = set(acc.Tags()["scalars"])
    for name in (
        "g_l1",
        "g_gan",
        "g_loss",
        "d_loss",
        "d_real",
        "d_fake",
        "g_grad_norm",
        "d_grad_norm",
        "lr",
        "images_per_sec",
    ):
        assert f"train/{name}" in tags, name
    assert sorted(_scalar(acc, "train/g_l1")) == list(range(20, 201, 20))
    images = acc.Images("val/sketch_hints_prediction_target")
    assert [e.step for e in images] == [0, 100, 200]
    grid = cv2.imdecode(np.frombuffer(images[-1].encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    # 8 rows (one per validation example) of 4 columns: sketch | hints | prediction | target.
    assert grid.shape[0] > 8 * c.image_size and grid.shape[1] > 4 * c.image_size


@pytest.mark.parametrize("num_workers", [0, 2])  # in-process and Grain worker processes
def test_rerun_with_more_steps_resumes_from_checkpoint(tiny_config, tmp_path, caplog, num_workers):
    caplog.set_level(logging.INFO)
    tiny_config.data.num_workers = num_workers
    tiny_config.num_steps = 4
    train_and_evaluate(tiny_config, str(tmp_path))
    assert "Starting fresh" in caplog.text
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
        "2",
        "4",
    ]

    caplog.clear()
    tiny_config.num_steps = 6
    state = train_and_evaluate(tiny_config, str(tmp_path))
    assert f"Resuming from step 4 in {tmp_path / 'checkpoints'}" in caplog.text
    assert int(state.step) == 6
    # The resumed run logs only the new steps and does not re-evaluate step 0.
    acc = _events(tmp_path)
    assert sorted(_scalar(acc, "train/g_l1")) == [2, 4, 6]
    assert sorted(_scalar(acc, "val/l1")) == [0, 2, 4, 6]


def test_batch_size_not_divisible_by_devices_fails_at_start(tiny_config, tmp_path):
    tiny_config.batch_size = 12
    with pytest.raises(ConfigError, match="batch_size=12 .* multiple of 8"):
        train_and_evaluate(tiny_config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_profile_is_off_by_default_and_checked(tiny_config, tmp_path):
    assert tiny_config.profile.num_steps == 0
    tiny_config.profile.num_steps, tiny_config.profile.start_step = 2, 0
    with pytest.raises(ConfigError, match="profile.start_step must be >= 1"):
        train_and_evaluate(tiny_config, str(tmp_path))


def test_config_errors_name_the_key(tiny_config, tmp_path):
    tiny_config.image_size = 48  # not a multiple of 2**num_downs = 32
    with pytest.raises(ConfigError, match="image_size=48 .*num_downs"):
        train_and_evaluate(tiny_config, str(tmp_path))


def _write_images(folder: pathlib.Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        h, w = 40 + 8 * i, 56 - 2 * i  # different sizes and aspect ratios
        image = np.zeros((h, w, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        cv2.circle(image, (w // 2, h // 2), min(h, w) // 3, rng.integers(0, 256, 3).tolist(), -1)
        cv2.imwrite(str(sub / f"img{i}.{('png', 'jpg', 'webp')[i % 3]}"), image)


def test_trains_on_an_image_folder_and_skips_corrupt_files(tiny_config, tmp_path, caplog):
    images = tmp_path / "images"
    _write_images(images, 10)
    (images / "part0" / "broken.png").write_bytes(b"not a png at all")
    tiny_config.data.source = f"folder:{images}"
    tiny_config.data.val_fraction = 0.2
    caplog.set_level(logging.WARNING)
    state = train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert int(state.step) == tiny_config.num_steps
    assert "broken.png" in caplog.text
    # 9 training files, batch 8: by step 4 the broken one was passed over at least 3 times.
    skipped = _scalar(_events(tmp_path / "run"), "train/skipped_images")
    assert skipped[tiny_config.num_steps] >= 3


def test_missing_image_folder_is_a_config_error(tiny_config, tmp_path):
    tiny_config.data.source = f"folder:{tmp_path / 'nope'}"
    with pytest.raises(ConfigError, match="data.source=.*does not exist"):
        train_and_evaluate(tiny_config, str(tmp_path / "run"))


def _cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    small = [
        "--config.image_size=32",
        "--config.batch_size=8",
        "--config.eval_batch_size=8",
        "--config.model.generator.num_downs=5",
        "--config.model.generator.ngf=8",
        "--config.model.discriminator.ndf=8",
        "--config.data.num_synthetic=32",
    ]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxcolor.train",
            f"--config={REPO / 'configs' / 'tiny.py'}",
            *small,
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_default_workdir_and_clean_config_errors(tmp_path):
    done = _cli("--config.num_steps=2", "--config.log_every=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("tiny-")
    assert f"writing to runs/{runs[0].name}" in done.stderr
    assert "TensorBoard: tensorboard --logdir" in done.stderr
    assert "step 2/2 (100%)" in done.stderr
    assert (runs[0] / "checkpoints" / "2").is_dir()

    bad = _cli("--config.batch_size=12", f"--workdir={tmp_path / 'bad'}", cwd=tmp_path)
    assert bad.returncode == 1
    assert "error: batch_size=12 is not divisible" in bad.stderr
    assert "Traceback" not in bad.stderr
