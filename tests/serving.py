"""Shared by tests/test_serve*.py: a tiny export and a real `python -m jaxcolor.serve` process."""

from __future__ import annotations

import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
JAX_FAMILY = ("jax", "jaxlib", "flax", "optax", "orbax", "grain")


def tiny_export(folder: pathlib.Path, hints: str = "points", config: str = "tiny") -> pathlib.Path:
    """An export of configs/<config>.py's generator shrunk to 32 px (5 downsamplings, width 8),
    freshly initialised by PyTorch: no JAX in this process, inference in milliseconds."""
    from conftest import load_config

    from jaxcolor.export import torch_models

    config = load_config(config)
    config.image_size = 32
    config.model.generator.num_downs = 5
    config.model.generator.ngf = 8
    if "style_width" in config.model.generator:  # configs/reference.py's style encoder
        config.model.generator.update(style_width=8, style_dim=16)
    config.data.hints = hints
    torch_models.write_initialised(config.to_dict(), folder, seed=0)
    return folder


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(data: bytes, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m jaxcolor.serve` in a subprocess; `jax_modules` is written at exit: the
    JAX-family modules the process had imported (must stay empty)."""

    def __init__(self, model: pathlib.Path, workdir: pathlib.Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.modules_file = workdir / f"modules-{self.port}.json"
        self.log = open(workdir / f"server-{self.port}.log", "w+")  # noqa: SIM115
        wrapper = (
            "import atexit, json, sys\n"
            f"atexit.register(lambda: open({str(self.modules_file)!r}, 'w').write(json.dumps("
            f"sorted(m for m in sys.modules if m.split('.')[0] in {JAX_FAMILY!r}))))\n"
            "from jaxcolor.serve.__main__ import main\n"
            "main(sys.argv[1:])\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("XLA_FLAGS", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                wrapper,
                "--model",
                str(model),
                "--port",
                str(self.port),
                "--log_level",
                "warning",
                *args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not get ready: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def jax_modules(self) -> list[str]:
        return json.loads(self.modules_file.read_text())

    def metric(self, name: str) -> float:
        """The value of one unlabelled sample of /metrics, e.g. jaxcolor_batch_size_count."""
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
