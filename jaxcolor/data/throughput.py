"""Host input-pipeline throughput: images/s through decode -> crop -> sketch -> hints -> batch.

`python -m jaxcolor.bench data` writes JPEGs of the synthetic cartoons (`--source_size` px, 512
by default), then runs the real training pipeline over them for each path (`data.derive`: "host"
derives sketches and hints in the pipeline, "device" ships colour crops, a seed and any sampled
hint geometry for the step to derive from) and each worker count, side by side in one run.
Besides wall-clock images/s it reports images per CPU-second (main process plus Grain workers,
from psutil): the per-core figure, independent of how many cores the machine lends the run.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import cv2
import ml_collections
import psutil

from jaxcolor.core.image_size import describe
from jaxcolor.data import pipeline, sources


@dataclasses.dataclass(frozen=True)
class Result:
    derive: str
    workers: int
    images: int
    seconds: float
    cpu_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def images_per_cpu_second(self) -> float:
        return self.images / max(self.cpu_seconds, 1e-9)

    def line(self) -> str:
        return (
            f"{self.derive:<6s} workers={self.workers:<2d} {self.images_per_second:8.1f} img/s   "
            f"{self.images_per_cpu_second:7.1f} img/s per core   "
            f"(CPU {self.cpu_seconds / self.seconds:4.2f} cores busy, {self.images} images "
            f"in {self.seconds:.2f} s)"
        )


def _write_jpegs(folder: str, count: int, size: int, quality: int = 90) -> None:
    """`count` synthetic cartoons as size x size JPEGs (the files the bench decodes)."""
    images = sources.SyntheticCartoonSource(count, size, seed=123)
    for i in range(count):
        bgr = cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR)
        cv2.imwrite(os.path.join(folder, f"{i:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of this process and its live children (Grain's worker processes)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(
    config: ml_collections.ConfigDict, derive: str, workers: int, batches: int, warmup: int
) -> Result:
    """Images/s of `pipeline.train_dataset` on path `derive` ("host" or "device") with
    `workers` Grain processes after `warmup` batches."""
    with config.unlocked():
        config.data.num_workers = workers
        config.data.derive = derive
    train, _ = pipeline.make_sources(config)
    iterator = iter(pipeline.train_dataset(config, train))
    for _ in range(warmup):  # worker start-up and first fills are not throughput
        next(iterator)
    me = psutil.Process()
    cpu0, t0 = _cpu_seconds(me), time.perf_counter()
    images = 0
    for _ in range(batches):
        images += len(next(iterator)["color"])
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds(me) - cpu0
    iterator.close()  # stops the workers before the next measurement
    return Result(derive, workers, images, seconds, cpu)


def run(
    config: ml_collections.ConfigDict,
    workers: list[int],
    *,
    derive: tuple[str, ...] = ("host", "device"),
    num_files: int = 2048,
    source_size: int = 512,
    batches: int = 20,
    warmup: int = 3,
    folder: str | None = None,
    echo=print,
) -> list[Result]:
    """Writes `num_files` JPEGs (unless `folder` is given) and measures each path and worker
    count, one after the other in this process."""
    with tempfile.TemporaryDirectory(prefix="jaxcolor-bench-data-") as tmp:
        if folder is None:
            folder = tmp
            _write_jpegs(folder, num_files, source_size)
        with config.unlocked():
            config.data.source = f"folder:{folder}"
            config.data.val_fraction = 0.0
        echo(
            f"Input pipeline: {source_size}px JPEGs -> {describe(config.image_size)}px crops, "
            f"sketch={config.data.sketch}, hints={config.data.hints}, per-process batch "
            f"{config.batch_size}, {os.cpu_count()} CPUs visible"
        )
        results = []
        for path in derive:
            for n in workers:
                results.append(measure(config, path, n, batches, warmup))
                echo(results[-1].line())
    return results
