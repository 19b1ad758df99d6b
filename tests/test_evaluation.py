"""PSNR/SSIM against scikit-image, the whole-split evaluator, and python -m jaxcolor.evaluate."""

import json

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import evaluate, parallel
from jaxcolor.data import pipeline, sources
from jaxcolor.evaluation import evaluator, fixed_batch, metrics, sample_sheet
from jaxcolor.evaluation.inception import expected_shapes
from jaxcolor.nets import inputs
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import state as state_lib


def _skimage(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The reference: per image, on [0, 1] images, Wang et al.'s Gaussian-window SSIM."""
    p, t = (np.clip((x.astype(np.float64) + 1) / 2, 0, 1) for x in (pred, target))
    return {
        "psnr": np.array(
            [peak_signal_noise_ratio(t[i], p[i], data_range=1.0) for i in range(len(p))]
        ),
        "ssim": np.array(
            [
                structural_similarity(
                    t[i],
                    p[i],
                    data_range=1.0,
                    channel_axis=-1,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
                for i in range(len(p))
            ]
        ),
    }


@pytest.mark.parametrize("shape", [(4, 32, 32, 3), (3, 40, 56, 3), (2, 24, 72, 1)])
def test_psnr_and_ssim_agree_with_scikit_image(shape):
    rng = np.random.default_rng(shape[1])
    target = rng.uniform(-1, 1, shape).astype(np.float32)
    # From pure noise to a close copy: SSIM spans ~0 .. ~1 across the batch.
    noise = np.linspace(0.05, 2.0, shape[0]).reshape(-1, 1, 1, 1)
    pred = np.clip(target + noise * rng.standard_normal(shape), -1, 1).astype(np.float32)
    ours = jax.jit(metrics.per_image)(pred, target)
    ref = _skimage(pred, target)
    assert ref["ssim"].max() - ref["ssim"].min() > 0.3  # the cases differ
    np.testing.assert_allclose(np.asarray(ours["ssim"]), ref["ssim"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(np.asarray(ours["psnr"]), ref["psnr"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(
        np.asarray(ours["l1"]), np.abs(pred - target).mean(axis=(1, 2, 3)), atol=1e-6
    )


def test_identical_images_score_perfectly():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    out = metrics.per_image(x, x)
    np.testing.assert_allclose(out["ssim"], 1.0, atol=1e-6)
    np.testing.assert_allclose(out["psnr"], 100.0)
    np.testing.assert_allclose(out["l1"], 0.0)


def _nets(config, mesh):
    state, nets = state_lib.create_train_state(config, mesh=mesh)
    return state, nets


def test_split_evaluator_counts_every_image_once_across_devices(tiny_config):
    """13 images in global batches of 8 on 8 devices (the last batch padded) give the plain
    per-image mean of scikit-image's PSNR/SSIM over exactly those 13 predictions."""
    c = tiny_config
    c.data.num_synthetic = 700  # a validation split of 2% = 14 images
    _, val = pipeline.make_sources(c)
    images = [pipeline.eval_examples(c, val)[i] for i in range(13)]
    assert len(val) >= 13

    mesh = parallel.create_mesh(-1)
    state, nets = _nets(c, mesh)
    split = evaluator.SplitEvaluator(
        c, nets, {}, mesh, val, batch_size=8, max_images=13, samples=10
    )
    scores = split(state)
    assert scores.num_images == 13

    one = parallel.create_mesh(1)
    state1 = jax.device_put(state, parallel.replicated(one))
    batch = {k: np.stack([e[k] for e in images]) for k in ("color", "sketch", "hints")}
    pred, _ = jax.jit(lambda s, b: fixed_batch.eval_step(s, {}, b, nets=nets))(state1, batch)
    _, target = inputs.model_inputs(batch)
    ref = _skimage(np.asarray(pred), np.asarray(target))
    got = scores.columns[evaluator.PAIRED]
    assert got["psnr"] == pytest.approx(ref["psnr"].mean(), abs=1e-3)
    assert got["ssim"] == pytest.approx(ref["ssim"].mean(), abs=1e-3)
    l1 = float(jnp.abs(pred - target).mean())
    assert got["l1"] == pytest.approx(l1, abs=1e-5)
    # The sample sheet's rows: the first 10 images (over two batches), exactly as scored.
    samples = scores.samples
    assert {k: v.shape[0] for k, v in samples.items()} == dict.fromkeys(samples, 10)
    for key, want in [("sketch", "sketch"), ("hints", "hints"), ("target", "color")]:
        np.testing.assert_array_equal(samples[key], batch[want][:10], err_msg=key)
    levels = np.clip(np.round((np.asarray(pred[:10]) + 1) * 127.5), 0, 255)
    np.testing.assert_array_equal(samples["output"], levels.astype(np.uint8))
    np.testing.assert_allclose(samples["psnr"], ref["psnr"][:10], atol=1e-3)


def _scalars(workdir, tag):
    acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def _write_folder(root, n: int) -> None:
    """n synthetic cartoons as PNG files of another size than the run's, one in a subfolder."""
    images = sources.SyntheticCartoonSource(n, (40, 48), seed=3)
    for i in range(n):
        path = root / ("sub" if i == 0 else "") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR))


# Scalars besides l1/psnr/ssim that a point-hint run writes for a scored set.
QUALITY = ("hint_error", "gain_db", "baselines/sketch_hints/psnr", "baselines/grey/hint_error")


def test_training_scores_the_split_and_the_cli_reproduces_it(tiny_config, tmp_path, capsys):
    c = tiny_config
    c.data.hints = "points"  # colour hints at known pixels: hint_error is measured
    c.eval_split_every = 4  # at step 4, the last
    c.eval_max_images = 0  # the whole validation split
    train_and_evaluate(c, str(tmp_path))
    n_val = len(pipeline.make_sources(c)[1])
    tags = (*metrics.NAMES, *QUALITY, "target/hint_error")
    during = {k: _scalars(tmp_path, f"eval_val/{k}") for k in tags}
    assert all(sorted(v) == [4] for v in during.values()), during
    assert sorted(_scalars(tmp_path, "val/hint_error")) == [0, 2, 4]  # the fixed batch

    out = tmp_path / "report.json"
    evaluate.main(["--workdir", str(tmp_path), "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["step"] == 4 and report["split"] == "val"
    assert report["source"] == {"spec": "synthetic", "split": "val"}
    assert report["num_images"] == n_val
    assert report["fid"].startswith("skipped")
    assert list(report["baselines"]) == ["grey", "mean_color", "sketch+hints"]
    paired, trivial = report["metrics"]["paired"], report["baselines"]
    best = max(trivial, key=lambda b: trivial[b]["psnr"])
    assert report["best_baseline"] == best
    assert paired["gain_db"] == pytest.approx(paired["psnr"] - trivial[best]["psnr"])
    assert trivial["sketch+hints"]["hint_error"] == 0.0 < trivial["grey"]["hint_error"]
    # The same checkpointed state and the same images: the same numbers.
    for k in metrics.NAMES:
        assert paired[k] == pytest.approx(during[k][4], abs=1e-4), k
    assert paired["hint_error"] == pytest.approx(during["hint_error"][4], abs=1e-3)
    assert paired["gain_db"] == pytest.approx(during["gain_db"][4], abs=1e-3)
    assert trivial["sketch+hints"]["psnr"] == pytest.approx(
        during["baselines/sketch_hints/psnr"][4], abs=1e-4
    )
    assert report["target"]["hint_error"] == pytest.approx(during["target/hint_error"][4], abs=1e-3)
    assert 0.0 < paired["ssim"] < 1.0 and 0.0 < paired["psnr"] < 60.0
    printed = capsys.readouterr().out
    assert "val step 4 [paired" in printed and str(out) in printed
    assert f"(over {best})" in printed and "[baseline sketch+hints]" in printed
    assert "[target" in printed

    # Another set: every image of a folder (recursive), read as the run's validation images,
    # and a sample sheet of its first 3.
    _write_folder(tmp_path / "heldout", 5)
    sheet = tmp_path / "sheet.png"
    evaluate.main(
        [
            "--workdir",
            str(tmp_path),
            "--source",
            f"folder:{tmp_path / 'heldout'}",
            "--samples",
            "3",
            "--sheet",
            str(sheet),
        ]
    )
    held_out = json.loads((tmp_path / "eval" / "folder_heldout-4.json").read_text())
    assert held_out["num_images"] == 5 and held_out["split"] == "folder_heldout"
    assert held_out["source"]["spec"] == f"folder:{tmp_path / 'heldout'}"
    assert held_out["sheet"] == str(sheet)
    assert set(held_out["metrics"]["paired"]) >= {*metrics.NAMES, "hint_error", "gain_db"}
    for k in QUALITY:
        assert sorted(_scalars(tmp_path, f"eval_folder_heldout/{k}")) == [4], k
    image = cv2.imread(str(sheet))
    side = 32 * sample_sheet.cell_scale(32)
    assert image.shape == (
        sample_sheet.HEADER + 3 * (side + sample_sheet.PAD) + sample_sheet.PAD,
        sample_sheet.LABEL_WIDTH + 4 * (side + sample_sheet.PAD) + sample_sheet.PAD,
        3,
    )  # 3 rows of sketch | hints | output | target

    # The default report path, a bounded run over the train split, and FID from a weights
    # file (random Inception weights in pytorch-fid's key layout; nothing is downloaded).
    weights = tmp_path / "inception.npz"
    rng = np.random.default_rng(0)
    np.savez(
        weights,
        **{
            k: (
                rng.uniform(0.5, 1.5, shape)
                if k.endswith("running_var")
                else 0.05 * rng.standard_normal(shape)
            ).astype(np.float32)
            for k, shape in expected_shapes().items()
        },
    )
    evaluate.main(
        [
            "--workdir",
            str(tmp_path),
            "--split",
            "train",
            "--max_images",
            "8",
            "--fid_weights",
            str(weights),
        ]
    )
    default = json.loads((tmp_path / "eval" / "train-4.json").read_text())
    assert default["num_images"] == 8 and default["split"] == "train"
    assert default["fid"] == "computed"
    # Its value is checked in tests/test_fid.py; 8 images only show that it is wired in.
    assert np.isfinite(default["metrics"]["paired"]["fid"])


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "No checkpoints in"),
        (["--split", "test"], "--split must be one of"),
        (["--source", "folder:/no/such/dir"], "--source folder:/no/such/dir: '/no/such/dir' is"),
        (["--source", "images"], "--source 'images': use --source folder:DIR"),
        (["--source", "tfds:x", "--data_dir", "/no/dir"], "--data_dir '/no/dir' is not a folder"),
        (["--source", "tfds:x", "--split", "val"], "--split and --source exclude each other"),
        (["--source_split", "test"], "--source_split applies to --source tfds:NAME only"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, args, match):
    with pytest.raises(SystemExit) as error:
        evaluate.main(["--workdir", str(tmp_path), *args])
    (line,) = str(error.value).splitlines()
    assert line.startswith("jaxcolor.evaluate: error: ") and match in line


def test_reference_models_get_a_different_reference_column():
    """The second column colorizes each image with the next image's reference: other
    predictions, so other scores; the paired column matches a plain eval_step."""
    from test_reference_model import small_config

    c = small_config()
    _, val = pipeline.make_sources(c)
    mesh = parallel.create_mesh(-1)
    state, nets = _nets(c, mesh)
    scores = evaluator.SplitEvaluator(c, nets, {}, mesh, val, batch_size=8)(state)
    assert set(scores.columns) == {evaluator.PAIRED, evaluator.DIFFERENT}
    paired, different = scores.columns[evaluator.PAIRED], scores.columns[evaluator.DIFFERENT]
    assert paired["l1"] != pytest.approx(different["l1"], abs=1e-6)
    # No hints: the flat baselines only (none reads the reference), a gain for each column.
    assert set(scores.baselines) == {"grey", "mean_color"} and not scores.target
    best = scores.baselines[scores.best_baseline]["psnr"]
    for column in (paired, different):
        assert column["gain_db"] == pytest.approx(column["psnr"] - best)
    assert set(scores.flat()) == {
        *metrics.NAMES,
        "gain_db",
        *(f"different_reference/{k}" for k in (*metrics.NAMES, "gain_db")),
        *(f"baselines/{b}/{k}" for b in ("grey", "mean_color") for k in metrics.NAMES),
    }
