"""profile.start_step / num_steps: a jax.profiler trace in the run's TensorBoard logdir."""

import pytest

from jaxcolor.core.errors import ConfigError
from jaxcolor.training.loop import train_and_evaluate


def test_profiled_steps_write_an_xplane_under_the_tensorboard_logdir(tiny_config, tmp_path):
    c = tiny_config
    c.num_steps, c.eval_every, c.checkpoint_every = 3, 100, 100
    c.profile.start_step, c.profile.num_steps = 2, 1
    train_and_evaluate(c, str(tmp_path))
    # TensorBoard's Profile tab reads LOGDIR/plugins/profile/<run>/<host>.xplane.pb.
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000


def test_profile_is_off_by_default_and_checked(tiny_config, tmp_path):
    assert tiny_config.profile.num_steps == 0
    tiny_config.profile.num_steps, tiny_config.profile.start_step = 2, 0
    with pytest.raises(ConfigError, match="profile.start_step must be >= 1"):
        train_and_evaluate(tiny_config, str(tmp_path))
