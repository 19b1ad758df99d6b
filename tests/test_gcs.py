"""The pod workflow on gs:// against a local GCS emulator (fake-gcs-server on 127.0.0.1).

One emulator serves the module; runs are shared between assertions to fit CI's time:
- subprocesses (`python -m jaxcolor.train`, a TFDS dataset that `prepare` wrote to gs://, 2
  Grain workers, the compilation cache in the gs:// workdir): SIGKILL while the save of step 10
  is in flight; the restart, under strace (every connect()), resumes from step 5 with programs
  from the gs:// cache and is stopped by SIGTERM; 2 processes then resume the shared workdir;
- in-process: a folder source on gs://, one run on a gs:// workdir (2 steps, resumed to 4)
  beside the same run on local disk, export and evaluate of that workdir, TensorBoard's reader
  and server on the logs. They run after the subprocesses and reuse their compiled programs.

Sizes: tests/conftest.py's small nets (32 px, ngf/ndf 8) with a 3-level U-Net, so that each
program set compiles in seconds.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import cv2
import gcs
import jax
import numpy as np
import pytest
from conftest import REPO, SMALL_OVERRIDES, load_config
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import gcs_events, summary
from jaxcolor.core.errors import WorkdirError
from jaxcolor.data import pipeline, sources
from jaxcolor.run.loop import train_and_evaluate

pytestmark = pytest.mark.slow

NUM_IMAGES = 24
DATASET = "gcs_images"
NUM_DOWNS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """fake-gcs-server with one bucket; the clients of this process and its children use it."""
    emulator = gcs.Emulator(tmp_path_factory.mktemp("gcs"))
    import fsspec.config

    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator.env.items():
            patch.setenv(key, value)
        # fsspec read its FSSPEC_* variables when it was imported; gcsfs instances are cached.
        patch.setitem(fsspec.config.conf, "gcs", {"token": "anon"})
        _clear_gcsfs_cache()
        if "google.auth.compute_engine._metadata" in sys.modules:  # it reads its env on import
            importlib.reload(sys.modules["google.auth.compute_engine._metadata"])
        try:
            yield emulator
        finally:
            _clear_gcsfs_cache()
            emulator.stop()


def _clear_gcsfs_cache() -> None:
    if "gcsfs" in sys.modules:
        sys.modules["gcsfs"].GCSFileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def images(server, tmp_path_factory) -> tuple[str, pathlib.Path]:
    """NUM_IMAGES 40 px PNGs in two sub-folders, at gs://BUCKET/images and in a local copy."""
    local = tmp_path_factory.mktemp("images")
    cartoons = sources.SyntheticCartoonSource(NUM_IMAGES, 40, seed=3)
    for i in range(NUM_IMAGES):
        path = local / ("ab"[i % 2]) / f"img_{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(cartoons[i], cv2.COLOR_RGB2BGR))
    fs = _fs()
    fs.put(f"{local}/", server.uri("images"), recursive=True)
    assert len(server.objects("images/")) == NUM_IMAGES
    return server.uri("images"), local


def _fs():
    import fsspec

    return fsspec.filesystem("gs")


@pytest.fixture(scope="module")
def tfds_dir(server, images) -> dict[str, str]:
    """`python -m jaxcolor.prepare --images gs://... --out gs://...`, in this process."""
    from jaxcolor import prepare

    out = server.uri("tfds")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        prepare.main(["--images", images[0], "--out", out, "--name", DATASET])
    return {"dir": out, "out": stdout.getvalue(), "err": stderr.getvalue()}


# --- subprocesses: SIGKILL during a save, restart (strace, compile cache), SIGTERM, 2 processes


def _train_cmd(workdir: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxcolor.train",
        f"--config={REPO / 'configs' / 'tiny.py'}",
        f"--workdir={workdir}",
        *(o for o in SMALL_OVERRIDES if ".num_downs=" not in o),
        f"--config.model.generator.num_downs={NUM_DOWNS}",
        "--config.eval_batch_size=8",
        "--config.log_every=1",
        "--config.eval_every=1000",
        "--config.eval_split_every=0",
        *overrides,
    ]


def _env(server, **extra) -> dict[str, str]:
    env = dict(os.environ, **server.env, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", **extra)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the run's own gs:// cache is under test
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_LOG_COMPILES"] = "1"  # and persistent-cache hits, with their keys
    env["JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES"] = "none"  # see chain_programs
    return env


def _wait_for(process, predicate, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _committed(server, prefix: str) -> list[int]:
    names = server.objects(prefix)
    return sorted(
        int(m.group(1))
        for n in names
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)/commit_success\.txt", n))
    )


def _strace_problem() -> str | None:
    """Why `strace -f` cannot trace here, or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (.ci/run installs it with apt-get)"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=connect", "-o", "/dev/null", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        return f"strace cannot trace here: {done.stderr.strip()}"
    return None


CHAIN = ("--config.data.num_workers=2", "--config.checkpoint_every=5")


@pytest.fixture(scope="module")
def chain(server, tfds_dir, tmp_path_factory):
    """SIGKILL during the save of step 10; restart (traced) to SIGTERM; 2 processes resume."""
    logs = tmp_path_factory.mktemp("chain")
    workdir = server.uri("chain")
    data = (f"--config.data.source=tfds:{DATASET}", f"--config.data.data_dir={tfds_dir['dir']}")
    killed_cmd = _train_cmd(workdir, *data, *CHAIN, "--config.num_steps=40")
    with (logs / "killed.log").open("w") as out:
        process = subprocess.Popen(
            killed_cmd, env=_env(server), stdout=out, stderr=out, start_new_session=True
        )
        step_10 = "chain/checkpoints/10/"
        _wait_for(process, lambda: server.objects(step_10), "the async save of step 10 to start")
        os.killpg(process.pid, signal.SIGKILL)  # the run and its Grain workers: a power cut
        process.wait(timeout=60)
    killed = {
        "log": (logs / "killed.log").read_text(),
        "committed": _committed(server, "chain/checkpoints/"),
        "step_10": sorted(server.objects(step_10)),
        "cache": server.objects("chain/compile_cache/"),
    }

    restart_cmd = [a.replace("num_steps=40", "num_steps=100000") for a in killed_cmd]
    problem = _strace_problem()
    trace = logs / "connect.trace"
    if problem is None:
        # With -o FILE strace ignores the SIGTERM sent to the group and follows the run (and its
        # Grain workers, -f) to the end.
        restart_cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *restart_cmd]
    log = logs / "restarted.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            restart_cmd, env=_env(server), stdout=out, stderr=out, start_new_session=True
        )
        _wait_for(process, lambda: "step 8/100000" in log.read_text(), "step 8 after the restart")
        os.killpg(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=180)
    restarted = {"log": log.read_text(), "returncode": returncode, "strace": problem}
    restarted["trace"] = trace.read_text() if problem is None else ""
    preempted = re.search(r"Preempted: saved step (\d+) in ", restarted["log"])
    restarted["saved"] = int(preempted.group(1)) if preempted else None
    restarted["committed"] = _committed(server, "chain/checkpoints/")
    if restarted["saved"] is None:
        return {"killed": killed, "restarted": restarted, "two": None}

    before = {n for n in server.objects("chain/tensorboard/") if "tfevents" in n}
    two = _two_processes(server, workdir, logs, restarted["saved"] + 2, data)
    two["new_event_files"] = {
        n for n in server.objects("chain/tensorboard/") if "tfevents" in n
    } - before
    two["committed"] = _committed(server, "chain/checkpoints/")
    return {"killed": killed, "restarted": restarted, "two": two}


def _two_processes(server, workdir: str, logs: pathlib.Path, num_steps: int, data) -> dict:
    """`jaxcolor.train` as 2 processes of 1 CPU device each, on one gs:// workdir."""
    env = _env(
        server,
        # One device each: 2 processes on 2 cores, each resuming the 8-device checkpoint.
        XLA_FLAGS="--xla_force_host_platform_device_count=1 "
        "--xla_cpu_collective_timeout_seconds=600 "
        "--xla_cpu_collective_call_terminate_timeout_seconds=600",
    )
    port = _free_port()
    processes = []
    for i in range(2):
        cmd = _train_cmd(
            workdir,
            *data,
            *CHAIN[1:],
            "--config.data.num_workers=0",
            f"--config.num_steps={num_steps}",
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        )
        out = (logs / f"process-{i}.log").open("w")
        processes.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=out), out))
    returncodes = []
    for process, out in processes:
        try:
            returncodes.append(process.wait(timeout=300))
        except subprocess.TimeoutExpired:
            for p, _ in processes:
                p.kill()
            returncodes.append(process.wait())
        out.close()
    return {
        "returncodes": returncodes,
        "logs": [(logs / f"process-{i}.log").read_text() for i in range(2)],
    }


def test_sigkill_during_a_gs_save_resumes_from_the_last_committed_step(chain):
    killed, restarted = chain["killed"], chain["restarted"]
    assert killed["committed"] == [5], killed["log"][-3000:]
    assert killed["step_10"], "the kill came before the save of step 10 started"
    assert "chain/checkpoints/10/commit_success.txt" not in killed["step_10"], (
        "the save finished before the kill; the test did not test anything"
    )
    text = restarted["log"]
    assert "Discarded incomplete checkpoint(s) 10 in gs://" in text, text[-3000:]
    assert "Resuming from step 5 in gs://jaxcolor-test/chain/checkpoints" in text
    assert "Traceback" not in text


HIT = r"Persistent compilation cache hit for '[^']+' with key '([^']+)'"


def test_restart_hits_the_gs_compilation_cache(chain):
    # What the killed run compiled, as it left it in gs://BUCKET/chain/compile_cache/.
    cached = {
        n.removeprefix("chain/compile_cache/").removesuffix("-cache"): size
        for n, size in chain["killed"]["cache"].items()
    }
    assert cached
    hits = set(re.findall(HIT, chain["restarted"]["log"]))
    assert hits and hits <= cached.keys(), sorted(hits - cached.keys())[:3]
    train_step = max(cached, key=cached.get)  # the largest program
    assert train_step in hits, chain["restarted"]["log"][-3000:]


def test_sigterm_on_gs_saves_the_step_and_exits_0(chain):
    restarted = chain["restarted"]
    text = restarted["log"]
    assert "SIGTERM received" in text, text[-3000:]
    assert restarted["returncode"] == 0, text[-3000:]
    saved = restarted["saved"]
    assert saved is not None and saved >= 8
    assert f"Preempted: saved step {saved} in gs://jaxcolor-test/chain/checkpoints" in text
    assert saved in restarted["committed"]


def test_two_processes_share_one_gs_workdir(chain):
    two = chain["two"]
    assert two is not None, "the SIGTERM run saved nothing to resume from"
    saved = chain["restarted"]["saved"]
    for i, (code, text) in enumerate(zip(two["returncodes"], two["logs"], strict=True)):
        assert code == 0, f"process {i}: {text[-3000:]}"
        assert f"Process {i} of 2" in text
        assert "Traceback" not in text
    assert f"Resuming from step {saved} in gs://jaxcolor-test/chain/checkpoints" in two["logs"][0]
    assert "it was saved by 1 processes, this run has 2" in two["logs"][0]
    assert saved + 2 in two["committed"]
    meta = json.loads(
        _fs().cat(f"gs://jaxcolor-test/chain/checkpoints/{saved + 2}/metadata/metadata")
    )
    assert meta["process_count"] == 2 and meta["mesh_shape"] == {"data": 2}
    assert len(two["new_event_files"]) == 1, two["new_event_files"]  # process 0 only


def _connects(trace: str) -> dict[str, int]:
    """{'AF_INET 127.0.0.1:4443': count, 'AF_UNIX /path': count, ...} of every connect()."""
    seen: dict[str, int] = {}
    for line in trace.splitlines():
        if "connect(" not in line:
            continue
        if m := re.search(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)', line):
            key = f"AF_INET {m.group(2)}:{m.group(1)}"
        elif m := re.search(r'sin6_port=htons\((\d+)\).*inet_pton\(AF_INET6, "([^"]+)"', line):
            key = f"AF_INET6 [{m.group(2)}]:{m.group(1)}"
        elif m := re.search(r'sun_path=(@?"[^"]*")', line):
            key = f"AF_UNIX {m.group(1)}"
        elif m := re.search(r"sa_family=(AF_\w+)", line):
            key = m.group(1)
        else:
            key = f"unparsed: {line.strip()}"
        seen[key] = seen.get(key, 0) + 1
    return seen


def test_every_connection_stays_on_loopback(chain, server):
    restarted = chain["restarted"]
    if restarted["strace"] is not None:
        pytest.skip(restarted["strace"])
    seen = _connects(restarted["trace"])
    print("connect() calls of the traced restart:", json.dumps(seen, indent=1))
    assert f"AF_INET 127.0.0.1:{server.port}" in seen, seen  # it did talk to the emulator
    network = {k: n for k, n in seen.items() if not k.startswith(("AF_UNIX", "AF_UNSPEC"))}
    off_loopback = [k for k in network if not k.startswith("AF_INET 127.0.0.1:")]
    assert not off_loopback, seen


# --- in-process: data on gs://, a gs:// workdir beside a local one, export, evaluate, logs


def _tiny(**changes):
    """The subprocess runs' config (tiny.py, 32 px, narrow nets), with `changes` (dotted keys)."""
    c = load_config("tiny")
    values = {
        "image_size": 32,
        "batch_size": 8,
        "eval_batch_size": 8,
        "num_steps": 4,
        "log_every": 1,
        "eval_every": 2,
        "checkpoint_every": 2,
        "eval_split_every": 0,
        "data.num_synthetic": 64,
        "model.generator.num_downs": NUM_DOWNS,
        "model.generator.ngf": 8,
        "model.discriminator.ndf": 8,
        "model.discriminator.n_layers": 2,
    } | changes
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def test_folder_source_on_gs_keeps_the_scheme(images):
    uri, local = images
    folder = sources.ImageFolderSource(uri)
    expected = sorted(str(p.relative_to(local)) for p in local.rglob("*.png"))
    assert folder.paths == [f"{uri}/{p}" for p in expected]  # was 'bucket/images/a/...'
    assert folder[0]["bytes"] == (local / expected[0]).read_bytes()


def test_prepare_reads_and_writes_gs(server, images, tfds_dir):
    from jaxcolor import prepare

    out = tfds_dir["dir"]
    wrote = f"Wrote {NUM_IMAGES} images to {out}/{DATASET}/1.0.0 (train: 23, validation: 1)"
    assert wrote in tfds_dir["out"]
    assert f"--config.data.data_dir={out}" in tfds_dir["out"]
    assert f"Uploading to {out}/{DATASET}/1.0.0" in tfds_dir["err"]  # the progress bar
    stored = server.objects(f"tfds/{DATASET}/1.0.0/")
    assert any(".array_record-" in name for name in stored), stored
    report = json.loads(_fs().cat(f"{out}/{DATASET}/1.0.0/jaxcolor_prepare.json"))
    assert report["written"] == {"train": 23, "validation": 1}
    # A TFDS reader on gs:// sees it, paths relative to the gs:// folder.
    train = sources.TfdsSource(DATASET, "train", data_dir=out)
    assert len(train) == 23 and re.search(r"\(\w/img_\d{3}\.png\)$", train[0]["path"])

    with pytest.raises(SystemExit) as error:  # refused up front, before any packing
        prepare.main(["--images", images[0], "--out", "gs://no-such-bucket/data"])
    (line,) = str(error.value).splitlines()
    assert line.startswith("jaxcolor.prepare: error: --out gs://no-such-bucket/data: cannot be")
    assert "check that the bucket exists" in line


def test_tfds_dataset_on_gs_feeds_the_pipeline_as_a_local_copy(tfds_dir, tmp_path):
    out = tfds_dir["dir"]
    _fs().get(f"{out}/", str(tmp_path), recursive=True)
    batches = {}
    for where, data_dir in (("gs", out), ("local", str(tmp_path))):
        config = _tiny(**{"data.source": f"tfds:{DATASET}", "data.data_dir": data_dir})
        config.data.num_workers = 0
        train, val = pipeline.make_sources(config)
        it = iter(pipeline.train_dataset(config, train))
        batches[where] = [next(it) for _ in range(3)] + [pipeline.validation_batch(config, val)]
    for gs_batch, local_batch in zip(batches["gs"], batches["local"], strict=True):
        assert gs_batch.keys() == local_batch.keys()
        for key in gs_batch:
            np.testing.assert_array_equal(gs_batch[key], local_batch[key], err_msg=key)


@pytest.fixture(scope="module")
def chain_programs(server, compile_cache):
    """The programs the subprocess runs compiled (if they ran), in this process's cache.

    JAX puts the cache directory into each key (GPU autotuning caches beside it, unused on CPU)
    unless `jax_persistent_cache_enable_xla_caches` is off, which the subprocess runs and this
    module set; the programs are then the same ones under the same keys.
    """
    previous = jax.config.jax_persistent_cache_enable_xla_caches
    jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
    cached = _fs().glob(server.uri("chain", "compile_cache", "*"))
    if cached:
        _fs().get(cached, f"{compile_cache}/")
    yield len(cached)
    jax.config.update("jax_persistent_cache_enable_xla_caches", previous)


@pytest.fixture(scope="module")
def runs(server, images, tmp_path_factory, chain_programs):
    """The same run on a gs:// workdir (2 steps, then resumed to 4) and on local disk (4)."""
    uri, local = images
    workdir = server.uri("run")
    gs_config = _tiny(**{"data.source": f"folder:{uri}"})
    gs_config.num_steps = 2
    train_and_evaluate(gs_config, workdir)
    gs_config.num_steps = 4
    gs_state = jax.device_get(train_and_evaluate(gs_config, workdir))
    local_dir = tmp_path_factory.mktemp("local") / "run"
    local_state = jax.device_get(
        train_and_evaluate(_tiny(**{"data.source": f"folder:{local}"}), str(local_dir))
    )
    return {"gs": workdir, "local": str(local_dir), "states": (gs_state, local_state)}


def test_resumed_gs_run_equals_the_local_run(runs):
    gs_state, local_state = runs["states"]
    gs_leaves, gs_tree = jax.tree.flatten(gs_state)
    local_leaves, local_tree = jax.tree.flatten(local_state)
    assert gs_tree == local_tree
    for a, b in zip(gs_leaves, local_leaves, strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise: model, optimizer, RNG and data restored


def _accumulator(logdir: str, **kwargs) -> event_accumulator.EventAccumulator:
    """TensorBoard's reader over `logdir` as a fresh TensorBoard process would see it: gcsfs
    caches listings and sizes for the life of a process, and other clients wrote since."""
    _fs().invalidate_cache()
    acc = event_accumulator.EventAccumulator(logdir, **kwargs)
    acc.Reload()
    return acc


def _scalars(logdir: str, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in _accumulator(logdir).Scalars(tag)}


def test_gs_event_files_read_back_like_the_local_ones(runs):
    # TensorBoard's own reader; on gs:// it goes through gcsfs (what --load_fast=false uses).
    for tag in ("train/g_loss", "train/d_loss", "val/psnr"):
        gs = _scalars(f"{runs['gs']}/tensorboard", tag)
        assert gs == _scalars(f"{runs['local']}/tensorboard", tag), tag
    assert sorted(gs) == [0, 2, 4]
    acc = _accumulator(f"{runs['gs']}/tensorboard")
    assert [e.step for e in acc.Images("val/sketch_hints_prediction_target")] == [0, 2, 4]


def test_export_from_gs_to_gs(server, runs, tmp_path, capsys):
    from safetensors.numpy import load

    from jaxcolor.export import __main__ as export_cli

    out = server.uri("exports", "run")
    export_cli.main(["--workdir", runs["gs"], "--out", out, "--with_discriminator"])
    printed = capsys.readouterr().out
    assert f"generator: {out}/generator.safetensors" in printed
    assert not pathlib.Path("gs:").exists()  # the old behaviour: a local folder named gs:
    stored = server.objects("exports/run/")
    assert sorted(stored) == [
        f"exports/run/{f}"
        for f in ("config.json", "discriminator.safetensors", "generator.safetensors")
    ]
    export_cli.main(["--workdir", runs["local"], "--out", str(tmp_path / "local")])
    capsys.readouterr()
    from_gs = load(_fs().cat(f"{out}/generator.safetensors"))
    from_local = load((tmp_path / "local" / "generator.safetensors").read_bytes())
    assert from_gs.keys() == from_local.keys()
    for key in from_gs:
        np.testing.assert_array_equal(from_gs[key], from_local[key], err_msg=key)
    assert json.loads(_fs().cat(f"{out}/config.json"))["step"] == 4

    with pytest.raises(SystemExit) as error:
        export_cli.main(["--workdir", runs["gs"], "--out", "gs://no-such-bucket/x"])
    (line,) = str(error.value).splitlines()
    assert line.startswith("jaxcolor.export: error: Cannot write --out gs://no-such-bucket/x")


def test_evaluate_a_gs_workdir(server, runs):
    from jaxcolor.evaluation.evaluator import evaluate_checkpoint

    gs = evaluate_checkpoint(runs["gs"], split="val")
    local = evaluate_checkpoint(runs["local"], split="val")
    assert gs["step"] == local["step"] == 4
    assert gs["metrics"] == local["metrics"]
    assert gs["json"] == f"{runs['gs']}/eval/val-4.json"
    assert json.loads(_fs().cat(gs["json"]))["metrics"] == local["metrics"]
    assert set(_scalars(f"{runs['gs']}/tensorboard", "eval_val/psnr")) == {4}


def test_missing_bucket_stops_before_compiling(server):
    started = time.monotonic()
    with pytest.raises(WorkdirError) as error:
        train_and_evaluate(_tiny(), "gs://no-such-bucket/run")
    assert time.monotonic() - started < 20  # was: ~25 s of compilation, then a 404 traceback
    (line,) = str(error.value).splitlines()
    assert line.startswith("--workdir gs://no-such-bucket/run: the bucket gs://no-such-bucket")
    assert "gcloud storage buckets create gs://no-such-bucket" in line


def test_event_uploads_stay_bounded_and_tensorboard_reads_them(server):
    """Each flush uploads at most one segment plus what is new, not the whole history; the
    segments read back in order, also in a running TensorBoard started as launch/ does."""
    logdir = server.uri("bounded", "tensorboard")
    noise = np.random.default_rng(0).integers(0, 256, (384, 384, 3), np.uint8)  # ~440 KB PNG
    uploads = _log_images(server, logdir, range(8), noise)
    image_bytes = uploads[0]
    # tensorboardX's own writer uploads the whole file: its 8th flush carries all 8 images
    # (3.6 MB), 36 images in all.
    assert max(uploads) < gcs_events.GCS_SEGMENT_BYTES + 2 * image_bytes, uploads
    assert sum(uploads) < 8 * (gcs_events.GCS_SEGMENT_BYTES + image_bytes), uploads
    objects = sorted(n for n in server.objects("bounded/tensorboard/") if "tfevents" in n)
    assert len(objects) >= 3 and objects[1] == f"{objects[0]}.000001", objects
    acc = _accumulator(logdir, size_guidance={"images": 0})
    assert [e.step for e in acc.Images("val/grid")] == list(range(8))
    assert [e.value for e in acc.Scalars("train/loss")] == [float(s) for s in range(8)]

    with _tensorboard(logdir) as scalars:
        _wait_until(lambda: scalars("train/loss") == list(range(8)), "TensorBoard: steps 0-7")
        writer = summary.Writer(logdir, flush_secs=10**6)  # a new event file while it runs
        for step in (8, 9):  # step 9 grows the object step 8 created
            writer.scalars(step, {"loss": float(step)}, "train")
            _wait_for_queue(writer)
            writer.flush()
            _wait_until(lambda n=step + 1: scalars("train/loss") == list(range(n)), f"step {step}")
        writer.close()


def _log_images(server, logdir: str, steps, image: np.ndarray) -> list[int]:
    """One writer: a scalar and an image per step, each flushed; bytes uploaded per flush."""
    writer = summary.Writer(logdir, flush_secs=10**6)  # only these flushes (and the first)
    uploads = []
    for step in steps:
        writer.scalars(step, {"loss": float(step)}, "train")
        writer.image(step, "val/grid", np.roll(image, step, axis=0))
        _wait_for_queue(writer)
        before = server.bytes_received()
        writer.flush()
        uploads.append(server.bytes_received() - before)
    writer.close()
    return uploads


def _wait_for_queue(writer: summary.Writer, timeout: float = 30) -> None:
    """tensorboardX's flush() leaves queued events in its queue; wait until they are written."""
    queue = writer._writer.file_writer.event_writer._event_queue  # noqa: SLF001
    deadline = time.monotonic() + timeout
    while not queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def _wait_until(predicate, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _board_command(workdir: str) -> tuple[dict[str, str], list[str]]:
    """The environment and arguments launch/tensorboard.sh runs TensorBoard with."""
    done = subprocess.run(
        ["bash", str(REPO / "launch" / "tensorboard.sh"), "--zone=z", "--project=p"]
        + [f"--workdir={workdir}", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr
    (line,) = [w for w in done.stdout.splitlines() if w.startswith("+ gcloud ")]
    (remote,) = [w for w in shlex.split(line) if w.startswith("--command=")]
    words = shlex.split(remote.removeprefix("--command="))
    program = next(i for i, w in enumerate(words) if w.endswith("/bin/tensorboard"))
    env = dict(w.split("=", 1) for w in words[:program])
    return env, words[program + 1 :]


@contextlib.contextmanager
def _tensorboard(logdir: str):
    """TensorBoard as launch/tensorboard.sh starts it (its env and flags; here the port, the
    host and a 1 s reload), on `logdir`; yields tag -> steps it serves for run '.'."""
    env, args = _board_command(logdir.removesuffix("/tensorboard"))
    assert "--load_fast=false" in args  # the Rust data server has its own GCS client
    assert f"--logdir={logdir}" in args
    port = _free_port()
    args = [a for a in args if not a.startswith("--port=")]
    args += [f"--port={port}", "--host=127.0.0.1", "--reload_interval=1"]
    log = tempfile.TemporaryFile("w+")
    board = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", *args],
        env=dict(os.environ, **env),
        stdout=log,
        stderr=log,
    )

    def scalars(tag: str) -> list[int] | None:
        if board.poll() is not None:
            log.seek(0)
            raise AssertionError(f"TensorBoard exited: {log.read()[-3000:]}")
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=.&tag={tag}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return [p[1] for p in json.load(response)]
        except OSError:
            return None

    try:
        yield scalars
    finally:
        board.terminate()
        board.wait(timeout=30)
        log.close()
