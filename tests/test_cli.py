"""Entry points: a user's command-line mistake is one line and exit code 1, before anything is
built; `bench` runs from a non-editable install in another directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from conftest import SMALL_OVERRIDES as SMALL

from jaxcolor import bench

TINY = str(REPO / "configs" / "tiny.py")
NO_DEVICE_WORK = "compilation"  # logged once a step is being built: errors must come before


def _train(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxcolor.train", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )


TRAIN_MISTAKES = {
    "mistyped key": (
        ["--config.loss.recon_wieght=10"],
        r"--config\.loss\.recon_wieght: config\.loss has no key 'recon_wieght'; did you mean "
        r"--config\.loss\.recon_weight.*\(its keys: aux_weights, gan_mode, hint_weight, "
        r"perceptual_weight, recon, recon_weight, ssim_weight, style_weight, vgg_layers, "
        r"vgg_weights\)",
    ),
    "mistyped top-level key": (
        ["--config.batchsize=4"],
        r"--config\.batchsize: the config has no key 'batchsize'; did you mean "
        r"--config\.batch_size",
    ),
    "mistyped section": (
        ["--config.modle.generator.ngf=4"],
        r"--config\.modle\.generator\.ngf: the config has no key 'modle'; did you mean "
        r"--config\.model\b",
    ),
    "bad value": (
        ["--config.batch_size=abc"],
        r"flag --config\.batch_size=abc: invalid literal for int\(\) with base 10: 'abc'",
    ),
    "unknown generator": (
        ["--config.model.generator.name=unett"],
        r"model\.generator\.name='unett' is not a known generator; choose one of "
        r"\['classic_unet', 'reference_unet', 'resunet', 'unet'\]",
    ),
    "missing VGG weights file": (
        ["--config.loss.style_weight=50", "--config.loss.vgg_weights=/nowhere/vgg19.pth"],
        r"loss\.vgg_weights=/nowhere/vgg19\.pth does not exist; give torchvision's ImageNet "
        r"VGG-19 weights, vgg19-dcbb9e9d\.pth \(https://\S+; nothing is downloaded\)",
    ),
    "another family's options": (
        ["--config.model.generator.name=resunet"],
        r"model\.generator\.name='resunet' takes no option dropout, upsample_impl; its options "
        r"are num_downs, .*jaxcolor\.config\.generator\('resunet'\)",
    ),
    "unknown discriminator": (
        ["--config.model.discriminator.name=patchgn"],
        r"model\.discriminator\.name='patchgn' is not a known discriminator; choose one of "
        r"\['multiscale_patchgan', 'patchgan'\]",
    ),
}


@pytest.mark.parametrize("mistake", sorted(TRAIN_MISTAKES))
def test_train_mistake_is_one_line(mistake, tmp_path):
    args, message = TRAIN_MISTAKES[mistake]
    workdir = tmp_path / "run"
    done = _train(f"--config={TINY}", *args, f"--workdir={workdir}", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("jaxcolor.train: error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert re.search(message, lines[-1]), lines[-1]
    assert NO_DEVICE_WORK not in done.stderr and not workdir.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("configs/nonexist.py", r"--config=configs/nonexist\.py: no such file; give a config"),
        # configs/pod.py refuses to guess the slice: its own words, without a traceback
        (
            str(REPO / "configs" / "pod.py"),
            r"--config=\S+pod\.py: configs/pod\.py needs the slice's accelerator type",
        ),
        # a config argument's names are checked: the unknown one and the known ones
        (
            str(REPO / "configs" / "reference.py") + ":tpu=v5litepod-8,hint=blur",
            r"configs/reference\.py: unknown argument 'hint' in 'tpu=v5litepod-8,hint=blur'; "
            r"its arguments are vgg, tpu",
        ),
    ],
)
def test_train_config_file_mistake_is_one_line(config, message, tmp_path):
    done = _train(f"--config={config}", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert re.search(message, line), line
    assert not (tmp_path / "runs").exists()  # no default workdir was made for it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config.loss.recon_wieght=10"], "did you mean --config.loss.recon_weight"),
        (["--config.batch_size=abc"], "flag --config.batch_size=abc: invalid literal"),
        (["--config.model.generator.name=unett"], "model.generator.name='unett' is not a known"),
        (["--workers", "0"], "unexpected arguments ['--workers', '0']"),  # not for `train`
    ],
)
def test_bench_mistake_is_one_line(args, message):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["train", "--config", TINY, *args])
    text = str(exit_.value.code)
    assert text.startswith("jaxcolor.bench: error: ") and message in text and "\n" not in text


def test_bench_runs_from_a_non_editable_install_in_another_directory(tmp_path):
    """`pip install .` (not -e), run elsewhere: a config file away from the checkout (tiny.py
    alone, no default.py beside it) builds on the installed base, bench compare finds its
    PyTorch step in the package, and without --config bench uses that base."""
    pytest.importorskip("torch")
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    # A copy of what a release holds, so the build leaves nothing in the checkout.
    shutil.copytree(REPO / "jaxcolor", src / "jaxcolor", ignore=shutil.ignore_patterns("__py*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere.mkdir()
    shutil.copy(TINY, elsewhere / "tiny.py")
    env = dict(os.environ, PYTHONPATH=str(site))

    def run_bench(*args):
        return subprocess.run(
            [sys.executable, "-m", "jaxcolor.bench", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import jaxcolor; print(jaxcolor.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout  # the installed copy

    # The base's 256 px (tiny.py has 64): a few small JPEGs through the pipeline, no step.
    no_config = run_bench(
        "data", "--workers", "0", "--files", "4", "--source_size", "64", "--batch_size", "4",
        "--batches", "1", "--warmup", "0",
    )  # fmt: skip
    assert no_config.returncode == 0, no_config.stderr[-3000:]
    assert '"image_size": 256' in no_config.stdout

    done = run_bench(
        "compare",
        "--config",
        "tiny.py",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--torch_variants",
        "eager_fp32",
        *SMALL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"jax_over_best_torch"' in done.stdout
