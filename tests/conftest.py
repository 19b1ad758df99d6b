"""Test set-up: 8 fake CPU devices, set before jax is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib.util  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# `--config.*` overrides that shrink configs/tiny.py to 32 px for bench runs in tests.
SMALL_OVERRIDES = [
    "--config.image_size=32",
    "--config.batch_size=8",
    "--config.model.generator.num_downs=5",
    "--config.model.generator.ngf=8",
    "--config.model.discriminator.ndf=8",
    "--config.model.discriminator.n_layers=2",
    "--config.data.num_synthetic=64",
]


def config_module(name: str):
    """configs/<name>.py as a module, loaded by path as config_flags does."""
    spec = importlib.util.spec_from_file_location(f"{name}_config", REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str, *args: str):
    """configs/<name>.py -> ConfigDict; `args` are what follows the file name
    (`configs/pod.py:tpu=16` -> "tpu=16")."""
    return config_module(name).get_config(*args)


@pytest.fixture
def tiny_config():
    """configs/tiny.py made smaller still (32 px, narrow nets) so one test takes seconds."""
    c = load_config("tiny")
    c.image_size = 32
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_steps = 4
    c.log_every = 2
    c.eval_every = 2
    c.checkpoint_every = 2
    c.data.num_synthetic = 64
    c.eval_split_every = 0  # tests/test_evaluation.py turns the whole-split evaluation on
    c.model.generator.num_downs = 5
    c.model.generator.ngf = 8
    c.model.discriminator.ndf = 8
    c.model.discriminator.n_layers = 2
    return c


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory) -> pathlib.Path:
    """One persistent compilation cache for the session and the subprocesses it starts
    (pass it as JAX_COMPILATION_CACHE_DIR): repeated runs of one config compile once."""
    import jax

    cache = tmp_path_factory.mktemp("jax_cache")
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return cache


# torchvision.models.vgg19().features ("E"): torchvision itself is not installed (it breaks beside
# this torch), so the tests build the same Sequential with plain torch.nn.
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
VGG19_CFG += [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def torch_vgg19_features(seed: int = 0):
    """torchvision's VGG-19 `features`, He-normal random weights (activations stay O(1) through
    16 convolutions, so a 1e-4 comparison means something deep down)."""
    import torch

    torch.manual_seed(seed)
    layers, cin = [], 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = torch.nn.Conv2d(cin, v, kernel_size=3, padding=1)
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.normal_(conv.bias, 0.0, 0.1)
            layers += [conv, torch.nn.ReLU(inplace=True)]
            cin = v
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="session")
def vgg19_pth(tmp_path_factory) -> dict:
    """A random VGG-19 saved as torchvision's file is (`features.*` plus classifier tensors,
    .pth): {"features": the torch module, "pth": path, "state": the saved state_dict}."""
    import collections

    import torch

    features = torch_vgg19_features()
    state = collections.OrderedDict((f"features.{k}", v) for k, v in features.state_dict().items())
    state["classifier.6.bias"] = torch.zeros(1000)  # ignored, as the real file's classifier
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return {"features": features, "pth": path, "state": state}
