"""Orbax checkpoint of a training run -> safetensors weights + config.json (+ TorchScript, ONNX)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import tempfile
import warnings

import jax
import ml_collections
import numpy as np
from etils import epath

import jaxcolor
from jaxcolor import checkpoint, parallel
from jaxcolor.core.errors import ExportError
from jaxcolor.export import FORMATS
from jaxcolor.export import config_json as config_json_lib
from jaxcolor.nets import convert, export_format
from jaxcolor.training import builder
from jaxcolor.training.state import TrainState

TORCHSCRIPT_FILE = "generator.torchscript.pt"
ONNX_FILE = "generator.onnx"


def restore(workdir: str, step: int | None = None) -> checkpoint.Restored:
    """The newest (or `step`'s) complete checkpoint in WORKDIR/checkpoints, as numpy arrays."""
    restored = checkpoint.restore_read_only(workdir, _abstract_state, step)
    return dataclasses.replace(restored, state=jax.device_get(restored.state))


def _abstract_state(config: ml_collections.ConfigDict) -> TrainState:
    """Shapes and dtypes of the run's TrainState, placed on one local device (no allocation)."""
    mesh = parallel.create_mesh(1, devices=jax.local_devices())
    return builder.build(config, mesh, frozen=builder.NONE, check=False).state


def state_dicts(
    restored: checkpoint.Restored, *, with_discriminator: bool
) -> dict[str, dict[str, np.ndarray]]:
    """{"generator": state_dict[, "discriminator": state_dict]} as numpy arrays; the generator's
    parameters are their moving average when the run kept one (train.ema_decay > 0)."""
    archs = config_json_lib.architectures(restored.config)
    nets = {"generator": restored.state.inference_generator()}  # the EMA weights when kept
    if with_discriminator:
        if restored.state.d is None:
            raise ExportError(
                "This run has no discriminator (loss.gan_mode='none'); drop --with_discriminator."
            )
        nets["discriminator"] = restored.state.d
    return {
        net: convert.flax_to_torch(net, archs[net], s.params, s.stats, step=restored.step)
        for net, s in nets.items()
    }


def _weights_note(restored: checkpoint.Restored) -> dict[str, dict]:
    """config.json's record of an averaged generator: {"generator_weights": ...} when the run
    kept an EMA (train.ema_decay > 0), whose parameters `state_dicts` exports; else {}."""
    if restored.state.ema is None:
        return {}
    decay = restored.config["train"]["ema_decay"]
    return {
        "generator_weights": {
            "average": "ema",
            "ema_decay": decay,
            "note": f"exponential moving average (train.ema_decay={decay}) of the generator's "
            "parameters, with its running BatchNorm statistics",
        }
    }


def export(
    workdir: str,
    out_dir: str,
    *,
    step: int | None = None,
    with_discriminator: bool = False,
    formats: tuple[str, ...] = ("safetensors",),
) -> dict[str, pathlib.Path | epath.Path]:
    """Writes OUT/config.json and the weights; returns {what: path} of every file written.

    safetensors (+ config.json) are always written; "torchscript" and "onnx" add a traced
    generator that needs neither jaxcolor nor the config to run. A gs:// (or other URL) `out_dir`
    is written locally first and then uploaded: safetensors, TorchScript and ONNX write files.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportError(f"Unknown --format {', '.join(unknown)}; choose from {FORMATS}.")
    if "://" in str(out_dir):
        return _export_to_url(workdir, str(out_dir), step, with_discriminator, formats)
    restored = restore(workdir, step)
    config_json = config_json_lib.make_config_json(
        restored.config,
        step=restored.step,
        version=jaxcolor.__version__,
        with_discriminator=with_discriminator,
    ) | _weights_note(restored)
    out = pathlib.Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"Cannot create --out {out}: {e.strerror or e}") from e

    written: dict[str, pathlib.Path] = {}
    for net, tensors in state_dicts(restored, with_discriminator=with_discriminator).items():
        path = out / config_json[net]["file"]
        convert.save_safetensors(tensors, path, step=restored.step, net=net)
        written[net] = path
    written["config"] = out / export_format.CONFIG_FILE
    written["config"].write_text(json.dumps(config_json, indent=2) + "\n")

    if "torchscript" in formats or "onnx" in formats:
        written |= _traced_exports(out, config_json, formats)
    return written


def _export_to_url(workdir, out_url, step, with_discriminator, formats) -> dict[str, epath.Path]:
    """`export` into a local temporary directory, then the files up to `out_url`."""
    import fsspec

    with tempfile.TemporaryDirectory(prefix="jaxcolor-export-") as staging:
        local = export(
            workdir, staging, step=step, with_discriminator=with_discriminator, formats=formats
        )
        fs, remote = fsspec.core.url_to_fs(out_url)
        try:
            fs.makedirs(remote, exist_ok=True)
            fs.put([str(p) for p in local.values()], remote.rstrip("/") + "/")
        except Exception as e:  # any storage client's refusal: no bucket, 403, no credentials
            raise ExportError(
                f"Cannot write --out {out_url} ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else e!r}); check that the bucket exists and "
                "that these credentials may write to it."
            ) from e
    return {what: epath.Path(out_url) / p.name for what, p in local.items()}


def _traced_exports(out: pathlib.Path, config_json: dict, formats) -> dict[str, pathlib.Path]:
    """TorchScript / ONNX generator from the just-written safetensors (needs torch)."""
    try:
        import torch

        from jaxcolor.export import torch_models
    except ImportError as e:
        raise ExportError(
            f"--format torchscript/onnx needs PyTorch ({e}); pip install 'jaxcolor[serve]'."
        ) from e
    generator, _ = torch_models.load(out, "generator")
    size = config_json["inputs"]["size_multiple"]
    example = torch.zeros(1, config_json["generator"]["in_channels"], size, size)
    if "reference" in config_json["inputs"]:  # reference-guided: forward(condition, reference)
        example = (example, torch.zeros(1, 3, size, size))
    written = {}
    if "torchscript" in formats:
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in recent PyTorch, yet still what many servers load.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(generator, example)
        written["torchscript"] = out / TORCHSCRIPT_FILE
        traced.save(str(written["torchscript"]))
    if "onnx" in formats:
        written["onnx"] = out / ONNX_FILE
        _export_onnx(generator, example, written["onnx"])
    return written


def _export_onnx(generator, example, path: pathlib.Path) -> None:
    import torch

    if importlib.util.find_spec("onnx") is None:
        raise ExportError("--format onnx needs the onnx package: pip install 'jaxcolor[onnx]'.")
    dynamic = {0: "batch", 2: "height", 3: "width"}
    if isinstance(example, tuple):  # reference-guided: a second input, the reference image
        names = ["condition", "reference"]
        axes = {"condition": dynamic, "reference": dynamic, "color": dynamic}
    else:
        names, axes, example = ["condition"], {"condition": dynamic, "color": dynamic}, (example,)
    with warnings.catch_warnings():
        # The TorchScript-based exporter (deprecated, still shipped in torch 2.x) needs no
        # onnxscript and keeps batch, height and width dynamic without shape guards.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            generator,
            example,
            str(path),
            input_names=names,
            output_names=["color"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
