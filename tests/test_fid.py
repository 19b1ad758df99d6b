"""FID: the Flax FID Inception-v3 against a PyTorch one, the loader, the statistics, the distance.

The PyTorch reference below is written from torchvision's `Inception3` (attribute names, layer
shapes) and pytorch-fid's FID patches (`FIDInceptionA/C/E_1/E_2`, the `InceptionV3` wrapper's
resize + normalise, block 3 = pool3), since neither package is installed here. Random weights,
BatchNorm statistics included, go through a real `.pth` file and `load_fid_inception`.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jaxcolor import parallel
from jaxcolor.evaluation import fid, inception

# ---------------------------------------------------------------------------------------------
# PyTorch reference: torchvision's Inception3 layers + pytorch-fid's FID patches.


class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        d = self.branch7x7dbl_3(self.branch7x7dbl_2(d))
        d = self.branch7x7dbl_5(self.branch7x7dbl_4(d))
        branch_pool = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([branch1x1, branch7x7, d, branch_pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(b))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, b, branch_pool], 1)


class FIDInceptionE(nn.Module):
    """FIDInceptionE_1 (max_pool=False) / FIDInceptionE_2 (max_pool=True)."""

    def __init__(self, in_channels, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_tf(x)
        branch_pool = self.branch_pool(pooled)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class TorchFIDInceptionV3(nn.Module):
    """fid_inception_v3() (aux_logits=False, 1008 classes) + InceptionV3's pool3 forward."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        """NCHW images in [0, 1] -> (B, 2048) pool3 features."""
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def _randomise(model: nn.Module, seed: int) -> None:
    """He-normal convs and random BatchNorm affine + running statistics (keeps the scale of the
    activations through the 94 layers, so the pool3 features are far from zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.rand(c, generator=g) - 0.1)
                m.running_mean.copy_(0.2 * torch.rand(c, generator=g) - 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(1000)


IMAGES_SHAPE = (3, 64, 80, 3)  # non-square, non-299: the network resizes


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Random-weight PyTorch FID Inception, its .pth file, random images and torch features."""
    torch.manual_seed(0)
    model = TorchFIDInceptionV3().eval()
    _randomise(model, seed=1)
    path = tmp_path_factory.mktemp("fid") / inception.FID_WEIGHTS_FILE
    torch.save(model.state_dict(), path)
    rng = np.random.default_rng(0)
    # 8x8 blocks of random colour + noise: images distinct enough that features differ.
    blocks = np.kron(rng.uniform(-1, 1, (3, 8, 10, 3)), np.ones((1, 8, 8, 1)))
    real = np.clip(0.7 * blocks + rng.normal(0, 0.2, IMAGES_SHAPE), -1, 1).astype(np.float32)
    fake = np.clip(real + rng.normal(0, 0.3, IMAGES_SHAPE), -1, 1).astype(np.float32)

    def features(images):  # [-1, 1] NHWC -> pytorch-fid's [0, 1] NCHW input
        x = torch.from_numpy((images.transpose(0, 3, 1, 2) + 1) / 2)
        with torch.no_grad():
            return model(x).double().numpy()

    return {
        "model": model,
        "path": path,
        "real": real,
        "fake": fake,
        "torch_real": features(real),
        "torch_fake": features(fake),
    }


@pytest.fixture(scope="module")
def loaded(reference):
    return inception.load_fid_inception(reference["path"])


def _features(model, images) -> np.ndarray:
    return np.asarray(fid.FidAccumulator(model).features(images), np.float64)


# ---------------------------------------------------------------------------------------------
# (a) parity with the PyTorch reference


def test_pool3_features_match_pytorch_fid_network(reference, loaded):
    """Flax features from the .pth == PyTorch features, |diff| <= 1e-5 * max |feature| (measured:
    6e-6 on features up to 10, 5.5e-7 relative; a count_include_pad=True average pool in the A/C/E_1
    blocks or an average pool in Mixed_7c is off by 6e-2 / 2.6e-1 relative)."""
    expected = reference["torch_real"]
    got = _features(loaded, reference["real"])
    assert got.shape == (3, 2048)
    scale = np.abs(expected).max()
    # The features must carry signal for the comparison to mean anything.
    assert scale > 0.1 and expected.std(axis=0).mean() > 1e-3 * scale
    max_diff = np.abs(got - expected).max()
    assert max_diff <= 1e-5 * scale, (max_diff, scale)


@pytest.mark.parametrize("size", [(64, 80), (331, 403), (299, 299)])
def test_preprocess_matches_torch_bilinear_resize(size):
    """Up- and downscaling both match F.interpolate(bilinear, align_corners=False) (no antialias),
    and [-1, 1] input is converted to pytorch-fid's [0, 1] before it is resized."""
    images = np.random.default_rng(1).uniform(-1, 1, (2, *size, 3)).astype(np.float32)
    got = np.asarray(inception.preprocess(jnp.asarray(images)))
    x01 = torch.from_numpy((images.transpose(0, 3, 1, 2) + 1) / 2)
    want = 2 * F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False) - 1
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), atol=2e-6)
    uint8 = np.round((images + 1) * 127.5).astype(np.uint8)
    from_uint8 = inception.preprocess(jnp.asarray(uint8), value_range=(0, 255))
    from_float = inception.preprocess(jnp.asarray(uint8 / 127.5 - 1, np.float32))
    np.testing.assert_allclose(np.asarray(from_uint8), np.asarray(from_float), atol=2e-6)


# ---------------------------------------------------------------------------------------------
# (c) the loader


def test_safetensors_and_npz_give_the_same_features_as_pth(reference, loaded, tmp_path):
    from safetensors.numpy import save_file

    tensors = {k: v.numpy() for k, v in reference["model"].state_dict().items()}
    save_file(tensors, tmp_path / "inception.safetensors")
    np.savez(tmp_path / "inception.npz", **tensors)
    want = _features(loaded, reference["real"])
    for name in ("inception.safetensors", "inception.npz"):
        model = inception.load_fid_inception(tmp_path / name)
        np.testing.assert_array_equal(_features(model, reference["real"]), want)


def _save(tmp_path, tensors, name="weights.pth"):
    path = tmp_path / name
    torch.save({k: torch.as_tensor(v) for k, v in tensors.items()}, path)
    return path


def test_loader_errors_name_the_file_the_keys_and_the_expected_file(reference, tmp_path):
    state = dict(reference["model"].state_dict())
    expected_file = re.escape(inception.FID_WEIGHTS_FILE)

    missing = {k: v for k, v in state.items() if not k.startswith("Mixed_7c.branch_pool.")}
    path = _save(tmp_path, missing)
    with pytest.raises(inception.FidWeightsError, match="missing keys") as e:
        inception.load_fid_inception(path)
    message = str(e.value)
    assert str(path) in message and "--fid_weights" in message
    assert "Mixed_7c.branch_pool.conv.weight" in message and "Mixed_7c.branch_pool.bn" in message
    assert re.search(expected_file, message)

    wrong = dict(state, **{"Mixed_6b.branch1x1.conv.weight": torch.zeros(192, 768, 3, 3)})
    with pytest.raises(inception.FidWeightsError, match="wrong shapes") as e:
        inception.load_fid_inception(_save(tmp_path, wrong))
    assert "Mixed_6b.branch1x1.conv.weight (192, 768, 3, 3) (expected (192, 768, 1, 1))" in str(
        e.value
    )

    # torchvision's ImageNet Inception has an aux classifier: not the FID network.
    extra = dict(state, **{"AuxLogits.conv0.conv.weight": torch.zeros(128, 768, 1, 1)})
    with pytest.raises(inception.FidWeightsError, match="unexpected keys: AuxLogits.conv0"):
        inception.load_fid_inception(_save(tmp_path, extra))

    absent = tmp_path / "nowhere" / inception.FID_WEIGHTS_FILE
    with pytest.raises(inception.FidWeightsError, match="does not exist") as e:
        inception.load_fid_inception(absent)
    assert str(absent) in str(e.value) and "nothing is downloaded" in str(e.value)

    (tmp_path / "weights.h5").write_bytes(b"\0")
    with pytest.raises(inception.FidWeightsError, match="unknown file type '.h5'"):
        inception.load_fid_inception(tmp_path / "weights.h5")

    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(inception.FidWeightsError, match="not a readable safetensors file"):
        inception.load_fid_inception(tmp_path / "broken.safetensors")


def test_pth_reads_without_torch(reference, monkeypatch):
    """The .pth is read by jaxcolor/weights_file.py's restricted unpickler, not torch.load."""
    want = reference["model"].state_dict()
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # `import torch` fails
    tensors = inception.read_state_dict(reference["path"])
    assert set(tensors) == set(want)
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var"):
        np.testing.assert_array_equal(tensors[k], want[k].numpy())


# ---------------------------------------------------------------------------------------------
# (b) statistics and the Fréchet distance


def _spd(rng, d, n):
    a = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=d)
    return np.cov(a, rowvar=False)


def _frechet_by_eigenvalues(mu1, s1, mu2, s2):
    """The formula evaluated another way: Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2))."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean


def test_frechet_distance_matches_the_formula():
    rng = np.random.default_rng(0)
    d = 48
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(rng, d, 200), _spd(rng, d, 200)
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(_frechet_by_eigenvalues(mu1, s1, mu2, s2), rel=1e-8)
    # Diagonal covariances: sum (sqrt a - sqrt b)^2 in closed form.
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, 1e-10)


def test_frechet_distance_is_zero_for_identical_statistics_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(1)
    d = 48
    mu, s = rng.normal(size=d), _spd(rng, d, 200)
    assert abs(fid.frechet_distance(mu, s, mu, s)) < 1e-9 * np.trace(s)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    values = [fid.frechet_distance(mu, s, mu + t * direction, s) for t in (0.5, 1.0, 2.0, 4.0)]
    np.testing.assert_allclose(values, [0.25, 1.0, 4.0, 16.0], rtol=1e-6)  # = |shift|^2


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="different lengths"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(3))


def test_running_statistics_on_device_batches_match_numpy_cov():
    """Per-batch centred moments (jitted, float32) merged in float64 == np.mean / np.cov of all
    rows, also with a large mean next to a small spread, uneven batches and masked rows."""
    rng = np.random.default_rng(2)
    d = 64
    feats = (100.0 + rng.normal(size=(70, d)) * rng.uniform(0.01, 1.0, d)).astype(np.float32)
    stats = fid.RunningStatistics()
    moments = jax.jit(fid.batch_moments)
    kept = []
    for lo, hi in ((0, 16), (16, 17), (17, 49), (49, 70)):
        batch = feats[lo:hi]
        mask = rng.uniform(size=len(batch)) > 0.2
        mask[0] = True
        stats.add_moments(*moments(jnp.asarray(batch), jnp.asarray(mask)))
        kept.append(batch[mask])
    stats.add_moments(*moments(jnp.asarray(feats[:4]), jnp.zeros(4, bool)))  # all padding
    kept = np.concatenate(kept).astype(np.float64)
    assert stats.count == len(kept)
    np.testing.assert_allclose(stats.mean, kept.mean(0), rtol=1e-6)
    cov = np.cov(kept, rowvar=False)
    np.testing.assert_allclose(stats.covariance, cov, atol=1e-5 * np.abs(cov).max())

    host = fid.RunningStatistics()
    host.add_features(feats[:30])
    host.add_features(feats[30:])
    np.testing.assert_allclose(host.covariance, np.cov(feats.astype(np.float64), rowvar=False))


def test_accumulator_statistics_match_pytorch_features(reference, loaded, caplog):
    """update() batches through Inception on device: real/fake means and covariances equal those
    of the PyTorch features; a masked entry is left out; too few images is a clear error."""
    acc = fid.FidAccumulator(loaded)
    acc.update(reference["real"], reference["fake"])
    mask = np.array([True, False, True])
    acc.update(reference["fake"], reference["real"], mask=mask)
    real, fake = acc.statistics()
    want_real = np.concatenate([reference["torch_real"], reference["torch_fake"][mask]])
    want_fake = np.concatenate([reference["torch_fake"], reference["torch_real"][mask]])
    scale = np.abs(want_real).max()
    for stats, want in ((real, want_real), (fake, want_fake)):
        assert stats.count == 5
        np.testing.assert_allclose(stats.mean, want.mean(0), atol=1e-4 * scale)
        cov = np.cov(want, rowvar=False)
        np.testing.assert_allclose(stats.covariance, cov, atol=1e-4 * np.abs(cov).max())

    acc.reset()
    acc.update(reference["real"], reference["fake"], mask=np.array([False, True, False]))
    with pytest.raises(fid.FidError, match="at least 2 real and 2 generated images, got 1 and 1"):
        acc.result()


def test_accumulator_on_a_mesh_with_uint8_real_images(reference, loaded):
    """The evaluator's path: batches sharded over a mesh (2 of the 8 devices, to keep CPU time
    low), real images as uint8 colour (value_range (0, 255)), generated ones in [-1, 1], a padded
    entry masked out: the statistics equal those of the PyTorch features of the same images."""
    mesh = parallel.create_mesh(2)
    sharding = parallel.batch_sharding(mesh)
    real, fake = reference["real"], reference["fake"]
    # The padded entry is an image of the other set, so masking the wrong row would show.
    real_u8 = np.round((np.concatenate([real, fake[:1]]) + 1) * 127.5).astype(np.uint8)
    mask = np.array([True, True, True, False])
    acc = fid.FidAccumulator(loaded, mesh=mesh)
    acc.update_real(jax.device_put(real_u8, sharding), mask, value_range=(0, 255))
    acc.update_fake(jax.device_put(np.concatenate([fake, real[:1]]), sharding), mask)
    real_stats, fake_stats = acc.statistics()

    with torch.no_grad():
        x = torch.from_numpy(real_u8[:3].transpose(0, 3, 1, 2).astype(np.float32) / 255)
        want_real = reference["model"](x).double().numpy()
    scale = np.abs(want_real).max()
    for stats, want in ((real_stats, want_real), (fake_stats, reference["torch_fake"])):
        assert stats.count == 3
        np.testing.assert_allclose(stats.mean, want.mean(0), atol=1e-4 * scale)
        cov = np.cov(want, rowvar=False)
        np.testing.assert_allclose(stats.covariance, cov, atol=1e-4 * np.abs(cov).max())
