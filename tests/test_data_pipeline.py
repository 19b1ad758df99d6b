"""Bad files, prepared TFDS datasets, paired sketches, and the Grain pipeline's guarantees."""

import json
import logging
import os
import pickle
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest
from bad_images import EXPECTED, write_bad_folder
from conftest import REPO

from jaxcolor.core.errors import ConfigError
from jaxcolor.data import decode, pipeline, sources
from jaxcolor.data.tfds_builder import REPORT, prepare

# --- decode: every kind of file ---------------------------------------------------------------


def test_every_bad_file_kind_is_converted_or_skipped_with_its_reason(tmp_path):
    files = write_bad_folder(tmp_path)
    reference = decode.decode(files["good.png"])
    for name, why in EXPECTED.items():
        if why is not None:
            with pytest.raises(decode.BadImage, match=why):
                decode.decode(files[name])
            continue
        image = decode.decode(files[name])
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    # Conversions keep the picture: the same pixels (up to JPEG/CMYK rounding) as the original.
    for name, tolerance in [("palette.png", 12), ("cmyk.jpg", 8), ("deep16.png", 0)]:
        diff = np.abs(decode.decode(files[name]).astype(int) - reference).mean()
        assert diff <= tolerance, (name, diff)
    rgba = decode.decode(files["rgba.png"])
    assert (rgba[:40] == 255).all(), "transparent pixels must become white paper"
    np.testing.assert_array_equal(rgba[-40:], reference[-40:])
    gray16 = decode.decode(files["gray16.png"])
    assert (gray16[..., 0] == gray16[..., 2]).all()
    # The EXIF orientation is applied: a 96x48 (tall) picture tagged "rotate 90" comes out wide.
    assert decode.decode(files["exif_rotated.jpg"]).shape == (48, 96, 3)


def test_large_jpegs_decode_at_reduced_scale_keeping_the_needed_side(tmp_path):
    data = write_bad_folder(tmp_path)["large.jpg"]  # 2400 x 1800
    assert decode.decode(data).shape == (1800, 2400, 3)
    reduced = decode.decode(data, min_side=300)
    assert reduced.shape == (450, 600, 3)  # 1/4 scale: the largest that keeps >= 300 px
    assert decode.decode(data, min_side=1000).shape == (1800, 2400, 3)


# --- the pipeline over a folder with bad files -------------------------------------------------


def test_folder_pipeline_skips_counts_and_names_bad_files(tiny_config, tmp_path, caplog):
    write_bad_folder(tmp_path / "images")
    c = tiny_config
    c.data.source = f"folder:{tmp_path / 'images'}"
    c.data.val_fraction = 0.0
    caplog.set_level(logging.WARNING)
    train, _ = pipeline.make_sources(c)
    bad = [n for n, why in EXPECTED.items() if why]
    # Reading record i passes over i, i+1, ... until a usable one: exactly the bad records
    # report skips when read at their own index, and the good ones none.
    skipped = [int(train[i]["skipped"]) for i in range(len(train))]
    assert sum(k > 0 for k in skipped) == len(bad)
    for name in bad:
        assert name in caplog.text
    batch = next(iter(pipeline.train_dataset(c, train)))
    assert batch["color"].shape == (8, 32, 32, 3) and batch["skipped"].shape == (8,)


def test_a_source_with_nothing_usable_fails_at_start_naming_why(tiny_config, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"")
    (folder / "b.png").write_bytes(b"not a png")
    tiny_config.data.source = f"folder:{folder}"
    tiny_config.data.val_fraction = 0.0
    with pytest.raises(ConfigError, match=r"none of the 2 images.*a\.jpg: empty file"):
        pipeline.make_sources(tiny_config)


def test_unknown_tfds_dataset_is_a_config_error_listing_what_exists(tiny_config, tmp_path):
    (tmp_path / "other").mkdir()
    tiny_config.data.source = "tfds:mine"
    tiny_config.data.data_dir = str(tmp_path)
    with pytest.raises(ConfigError, match=r"no TFDS dataset 'mine'.*holds: other.*prepare"):
        pipeline.make_sources(tiny_config)


# --- prepare -> tfds:NAME ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The bad-file folder packed as the TFDS dataset `mine` (via the CLI's main)."""
    root = tmp_path_factory.mktemp("prepare")
    write_bad_folder(root / "images")
    from jaxcolor.prepare import main

    main(["--images", str(root / "images"), "--out", str(root / "d"), "--name", "mine",
          "--val_fraction", "0.2", "--max_side", "512"])  # fmt: skip
    return root


def test_prepare_reports_each_skipped_file_and_writes_the_rest(prepared):
    report = json.loads((prepared / "d" / "mine" / "1.0.0" / REPORT).read_text())
    skipped = {s["file"].rsplit("/", 1)[-1]: s["why"] for s in report["skipped"]}
    assert set(skipped) == {n for n, why in EXPECTED.items() if why}
    for name, why in skipped.items():
        assert EXPECTED[name] in why, (name, why)
    usable = sum(why is None for why in EXPECTED.values())
    assert sum(report["written"].values()) == usable
    assert report["converted"]["resized"] == 1  # large.jpg, long side 2400 -> 512
    builder = sources.tfds_builder("mine", str(prepared / "d"))
    train = sources.TfdsSource("mine", "train", builder=builder)
    sizes = [decode.decode(train[i]["bytes"]).shape for i in range(len(train))]
    assert max(max(s[:2]) for s in sizes) <= 512


def test_prepare_refuses_to_overwrite_and_bad_names(prepared):
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        prepare(str(prepared / "images"), str(prepared / "d"), "mine")
    with pytest.raises(ConfigError, match="--name 'My-Set'"):
        prepare(str(prepared / "images"), str(prepared / "d"), "My-Set")
    with pytest.raises(ConfigError, match="TFDS catalogue"):
        prepare(str(prepared / "images"), str(prepared / "d"), "mnist")


def test_training_runs_on_a_prepared_dataset_with_point_hints(prepared, tiny_config, tmp_path):
    from jaxcolor.run.loop import train_and_evaluate

    c = tiny_config
    c.data.source = "tfds:mine"
    c.data.data_dir = str(prepared / "d")
    c.data.hints = "points"
    c.num_steps = 2
    c.model.discriminator.ndf = 6
    state = train_and_evaluate(c, str(tmp_path / "run"))
    assert int(state.step) == 2


def test_a_held_out_set_is_a_whole_folder_or_a_tfds_split(prepared, tiny_config):
    """`evaluate --source`: a folder is read whole (no split); a TFDS dataset's split defaults to
    the one validation reads; images are decoded for the run's size and checked."""
    c = tiny_config
    folder = pipeline.held_out_source(c, f"folder:{prepared / 'images'}")
    assert len(folder) == len(EXPECTED)  # every file, bad ones included (skipped when read)
    d = str(prepared / "d")
    val = pipeline.held_out_source(c, "tfds:mine", data_dir=d)
    train = pipeline.held_out_source(c, "tfds:mine", data_dir=d, split="train")
    assert val.source.split == "validation" and train.source.split == "train"
    assert len(val) + len(train) == sum(why is None for why in EXPECTED.values())
    example = pipeline.eval_examples(c, val)[0]
    assert example["color"].shape == (32, 32, 3) and example["hints"].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="has no split 'test'"):
        pipeline.held_out_source(c, "tfds:mine", data_dir=d, split="test")


# --- paired layout: the real sketch is cropped and flipped with its colour image --------------


def _paired_folder(folder, count=6, size=48):
    folder.mkdir()
    images = sources.SyntheticCartoonSource(count, (size, size + 16), seed=5)
    for i in range(count):
        color = images[i]
        gray = cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
        pair = np.concatenate([color, np.repeat(gray[..., None], 3, -1)], axis=1)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize("via", ["folder", "tfds"])
def test_paired_sketches_stay_aligned_with_their_colour(tiny_config, tmp_path, via):
    _paired_folder(tmp_path / "pairs")
    c = tiny_config
    if via == "folder":
        c.data.source, c.data.layout = f"folder:{tmp_path / 'pairs'}", "paired"
    else:
        summary = prepare(str(tmp_path / "pairs"), str(tmp_path / "d"), "pairs", layout="paired")
        assert summary.written["train"] >= 5
        c.data.source, c.data.data_dir = "tfds:pairs", str(tmp_path / "d")
    c.data.sketch, c.data.sketch_augment = "dataset", False
    train, _ = pipeline.make_sources(c)
    batch = next(iter(pipeline.train_dataset(c, train)))
    gray = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in batch["color"]])
    # Random crops and flips differ per example; the sketch must have had the same ones.
    assert np.abs(batch["sketch"][..., 0].astype(int) - gray).mean() < 2.0
    flipped = np.abs(batch["sketch"][..., 0].astype(int) - gray[:, :, ::-1]).mean()
    assert flipped > 10.0


def test_dataset_sketches_need_a_paired_source(tiny_config):
    tiny_config.data.sketch = "dataset"
    with pytest.raises(ConfigError, match="data.sketch='dataset'"):
        pipeline.make_sources(tiny_config)


# --- determinism, checkpointable iterators, per-process shards --------------------------------


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_same_seed_same_batches_other_seed_other_batches(tiny_config):
    c = tiny_config
    c.data.hints = "points"
    train, _ = pipeline.make_sources(c)
    first = _take(iter(pipeline.train_dataset(c, train)), 3)
    _assert_same(first, _take(iter(pipeline.train_dataset(c, train)), 3))
    c.seed = 1
    other = next(iter(pipeline.train_dataset(c, train)))
    assert not np.array_equal(other["color"], first[0]["color"])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_restored_iterator_continues_with_the_next_batch(tiny_config, num_workers):
    c = tiny_config
    c.data.hints = "strokes"
    c.data.num_workers = num_workers
    train, _ = pipeline.make_sources(c)
    iterator = iter(pipeline.train_dataset(c, train))
    _take(iterator, 3)
    state = iterator.get_state()
    expected = _take(iterator, 2)
    restored = iter(pipeline.train_dataset(c, train))
    restored.set_state(state)
    _assert_same(expected, _take(restored, 2))


# A script that never parses absl flags. Grain spawns its workers, which re-import the script as
# __main__: the work sits under `if __name__ == "__main__"`.
WORKERS_WITHOUT_PARSED_FLAGS = """
import pickle
import sys

import numpy as np
from absl import flags

from jaxcolor.data import pipeline


if __name__ == "__main__":
    config_file, out = sys.argv[1:]
    with open(config_file, "rb") as f:
        config = pickle.load(f)
    train, _ = pipeline.make_sources(config)
    iterator = iter(pipeline.train_dataset(config, train))
    batches = [next(iterator) for _ in range(2)]
    iterator.close()
    np.savez(out, **{f"{i}_{k}": v for i, b in enumerate(batches) for k, v in b.items()})
    print("flags parsed:", flags.FLAGS.is_parsed())
"""


def test_worker_processes_run_where_no_absl_flags_were_parsed(tiny_config, tmp_path):
    """A library caller (a notebook, a script without absl.app, in a fresh process) gets its
    batches from Grain worker processes, the same as here, and absl's flags stay unparsed: the
    pipeline neither parses nor marks them."""
    c = tiny_config
    c.data.hints = "points"
    c.data.num_workers = 2
    (tmp_path / "config.pkl").write_bytes(pickle.dumps(c))
    script = tmp_path / "read_batches.py"
    script.write_text(WORKERS_WITHOUT_PARSED_FLAGS)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "config.pkl"), str(tmp_path / "out.npz")],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flags parsed: False" in done.stdout
    train, _ = pipeline.make_sources(c)  # the workers split rows differently from 0 workers
    iterator = iter(pipeline.train_dataset(c, train))
    expected = _take(iterator, 2)
    iterator.close()
    with np.load(tmp_path / "out.npz") as read:
        assert sorted(read) == sorted(f"{i}_{k}" for i in range(2) for k in expected[i])
        for i, batch in enumerate(expected):
            for k, v in batch.items():
                np.testing.assert_array_equal(read[f"{i}_{k}"], v)


class _NumberedImages:
    """Image i is a flat colour that encodes i, so crops and flips keep it readable."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((self.size, self.size, 3), (i % 256, i // 256, 77), np.uint8)


def test_two_process_shards_cover_the_data_without_overlap(tiny_config, monkeypatch):
    c = tiny_config
    c.data.hints = "none"
    n, per_process = 64, c.batch_size // 2
    seen = []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        batches = _take(
            iter(pipeline.train_dataset(c, _NumberedImages(n, 32))), n // 2 // per_process
        )
        assert all(b["color"].shape[0] == per_process for b in batches)
        colors = np.concatenate([b["color"][:, 0, 0] for b in batches]).astype(int)
        seen.append(colors[:, 0] + 256 * colors[:, 1])
    # One epoch of each process's shard: disjoint halves that together are every image once.
    assert len(set(seen[0])) == len(seen[0]) == n // 2
    assert set(seen[0]).isdisjoint(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(n))


# --- bench data --------------------------------------------------------------------------------


def test_bench_data_measures_each_worker_count(tmp_path, capsys):
    from conftest import REPO

    from jaxcolor import bench

    out = tmp_path / "data.json"
    result = bench.main(
        ["data", "--config", str(REPO / "configs" / "tiny.py"), "--workers", "0", "1",
         "--files", "16", "--source_size", "64", "--batch_size", "8", "--batches", "2",
         "--warmup", "1", "--json", str(out), "--config.image_size=32"]
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert (result["sketch"], result["hints"], result["image_size"]) == ("xdog", "points", 32)
    runs = [(r["derive"], r["workers"]) for r in result["results"]]
    assert runs == [("host", 0), ("host", 1), ("device", 0), ("device", 1)]
    for r in result["results"]:
        assert r["images_per_s"] > 0 and r["images_per_core_s"] > 0
    lines = capsys.readouterr().err
    assert "64px JPEGs -> 32px" in lines and "img/s per core" in lines
