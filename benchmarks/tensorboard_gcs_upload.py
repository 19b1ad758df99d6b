"""Bytes uploaded per TensorBoard flush vs step, for a gs:// logdir, on a local GCS emulator.

    python benchmarks/tensorboard_gcs_upload.py [--config configs/default.py] [--steps N]
        [--flush_every 100] [--writer jaxcolor|tensorboardx] [--json PATH]

Replays the config's logging schedule through `jaxcolor.summary.Writer` into
gs://BUCKET/tensorboard on fake-gcs-server (tests/gcs.py starts it; the `test` extra installs it):
train scalars every `log_every` steps, val scalars and the validation image grid every
`eval_every` steps (then a flush, as the training loop does), `eval_val/*` every
`eval_split_every`, and a flush every `--flush_every` steps standing in for the writer's
30-second timer (100 = one per log point, i.e. a run at <= 3.3 steps/s). The grid is built from
the config's real validation batch (sketch | hints | prediction | target), the prediction being
the target plus Gaussian noise (sigma 8). Each flush's upload is measured at the server: the
bytes it read from its sockets (/proc/PID/io rchar) during that flush. `--writer tensorboardx`
restores tensorboardX's own gs:// writer (one object, re-uploaded whole at every flush). At the
end every event is read back from gs:// with TensorBoard's EventAccumulator.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import gcs  # noqa: E402  tests/gcs.py: the emulator

from jaxcolor import gcs_events, summary  # noqa: E402
from jaxcolor.data import pipeline  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.")
_STEPS = flags.DEFINE_integer("steps", None, "Steps to replay (default: the config's num_steps).")
_FLUSH_EVERY = flags.DEFINE_integer("flush_every", 100, "A timed flush every N steps.")
_WRITER = flags.DEFINE_enum("writer", "jaxcolor", ["jaxcolor", "tensorboardx"], "gs:// writer.")
_JSON = flags.DEFINE_string("json", None, "Also write the per-flush figures here.")

TRAIN = ("g_l1", "g_gan", "g_loss", "d_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm")
TRAIN += ("lr", "steps_per_sec", "images_per_sec")


def _grid(config) -> np.ndarray:
    config.data.num_workers = 0
    _, val_source = pipeline.make_sources(config)
    batch = pipeline.validation_batch(config, val_source)
    noise = np.random.default_rng(0).normal(0, 8, batch["color"].shape)
    pred = np.clip(batch["color"] + noise, 0, 255).astype(np.uint8)
    return summary.image_grid([batch["sketch"], batch["hints"], pred, batch["color"]])


def _drain(writer: summary.Writer) -> None:
    """Waits until tensorboardX's worker thread has written every queued event (its flush()
    does not), so that each measured flush uploads what was logged before it."""
    queue = writer._writer.file_writer.event_writer._event_queue  # noqa: SLF001  benchmark only
    while not queue.empty():
        time.sleep(0.005)
    time.sleep(0.02)


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    steps = _STEPS.value or config.num_steps
    grid = _grid(config)
    with tempfile.TemporaryDirectory() as tmp:
        server = gcs.Emulator(pathlib.Path(tmp))
        os.environ.update(server.env)
        try:
            logdir = server.uri("tensorboard")
            if _WRITER.value == "tensorboardx":  # the writer before jaxcolor.summary had its own
                from tensorboardX import record_writer

                gcs_events.SegmentedGCSRecordWriterFactory = record_writer.GCSRecordWriterFactory
                # Its __del__ uploads the whole file once more, after the server has stopped.
                record_writer.GCSRecordWriter.__del__ = lambda self: None
            # The timer never fires (10**6 s; 10**9 overflows poll()): every flush is one of ours.
            writer = summary.Writer(logdir, flush_secs=10**6)
            flushes = []

            def flush(step: int, why: str, call) -> None:
                _drain(writer)
                before = server.bytes_received()
                call()
                uploaded = server.bytes_received() - before
                flushes.append({"step": step, "why": why, "bytes": uploaded})

            rng = np.random.default_rng(0)
            started = time.perf_counter()
            for step in range(steps + 1):
                last = step == steps
                if step and (step % config.log_every == 0 or last):
                    values = dict(zip(TRAIN, rng.random(len(TRAIN)), strict=True))
                    writer.scalars(step, values, "train")
                if step % config.eval_every == 0 or last:
                    writer.scalars(step, {"l1": 0.1, "psnr": 20.0, "ssim": 0.8}, "val")
                    writer.image(step, "val/sketch_hints_prediction_target", grid)
                    flush(step, "eval", writer.flush)
                elif step and step % _FLUSH_EVERY.value == 0:
                    flush(step, "timer", writer.flush)
                if config.eval_split_every and step and (step % config.eval_split_every == 0):
                    writer.scalars(step, {"l1": 0.1, "psnr": 20.0, "ssim": 0.8}, "eval_val")
            flush(steps, "close", writer.close)
            seconds = time.perf_counter() - started
            objects = server.objects("tensorboard/")

            from tensorboard.backend.event_processing import event_accumulator

            acc = event_accumulator.EventAccumulator(logdir, size_guidance={"images": 0})
            acc.Reload()
            read_back = {
                "train/g_l1 scalars": len(acc.Scalars("train/g_l1")),
                "grids": len(acc.Images("val/sketch_hints_prediction_target")),
            }
        finally:
            server.stop()
    sizes = [f["bytes"] for f in flushes if f["why"] != "close"]
    by_step = {}
    for f in flushes:
        if f["why"] != "close":
            by_step[f["step"]] = max(by_step.get(f["step"], 0), f["bytes"])
    marks = sorted({s for s in (0, 2000, 10_000, 20_000, 50_000, steps) if s in by_step})
    report = {
        "writer": _WRITER.value,
        "config": {k: config[k] for k in ("image_size", "log_every", "eval_every", "num_steps")},
        "steps": steps,
        "grid_shape": list(grid.shape),
        "flushes": len(flushes),
        "upload_bytes_at_step": {s: by_step[s] for s in marks},
        "max_flush_bytes": max(sizes),
        "total_flush_upload_bytes": sum(sizes),
        "close_upload_bytes": flushes[-1]["bytes"],
        "event_objects": len(objects),
        "stored_bytes": sum(objects.values()),
        "read_back": read_back,
        "seconds": round(seconds, 1),
        "jax_backend": jax.default_backend(),
    }
    print(json.dumps(report, indent=1))
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(report | {"per_flush": flushes}, indent=1))


if __name__ == "__main__":
    app.run(main)
