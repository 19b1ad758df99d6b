"""One derivation of a run from its config: validate -> mesh -> networks, train state and frozen
networks -> batch shapes -> the jitted train step.

Training (`run/loop.py`), the step benchmarks (`run/benchmark.py`), ahead-of-time compilation
(`run/aot.py`), checkpoint evaluation (`evaluation/evaluator.py`) and export
(`export/exporter.py`) all call `build`; none of them repeats the sequence. The state it holds is
abstract (shapes placed replicated over the mesh): a restore target, or what `init_state`
computes for a fresh run, as MaxText's `load_state_if_possible` resumes from an abstract state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from jaxcolor import parallel
from jaxcolor.data import derive, schema
from jaxcolor.training import config_checks
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training.state import Networks, TrainState, abstract_train_state, create_train_state
from jaxcolor.training.step import jit_train_step

# What `build` makes of the frozen networks (`training/frozen.py`).
LOAD = "load"  # every one the train step needs, weights read and placed (training, bench)
ABSTRACT = "abstract"  # the same as shapes, no weights file read (bench aot)
INFERENCE = "inference"  # loaded, only those the generator's inputs need (evaluation)
NONE = "none"  # none (export: the state alone)
FROZEN = (LOAD, ABSTRACT, INFERENCE, NONE)


@dataclasses.dataclass(frozen=True)
class Run:
    """A config's networks, state and frozen networks on a mesh."""

    config: ml_collections.ConfigDict
    mesh: Mesh
    nets: Networks  # static: graph definitions, optimizers, the learning-rate schedule
    state: TrainState  # shapes and dtypes, placed replicated over `mesh`; nothing allocated
    frozen: frozen_lib.Frozen  # name -> frozen network (weights, or shapes with ABSTRACT)

    def init_state(self) -> TrainState:
        """The step-0 state (seeded by config.seed), computed and replicated over the mesh."""
        return create_train_state(self.config, mesh=self.mesh)[0]

    def batch_shapes(self, batch_size: int | None = None) -> dict[str, jax.ShapeDtypeStruct]:
        """The global batch of `batch_size` (default config.batch_size) as the batch schema
        declares it (`data/schema.py`), batch-sharded over the mesh: what the steps are
        compiled for."""
        sharding = parallel.batch_sharding(self.mesh)
        return {
            k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
            for k, (shape, dtype) in schema.shapes(self.config, batch_size).items()
        }

    def synthetic_batch(self, batch_size: int | None = None, seed: int = 0) -> dict[str, Any]:
        """A random global batch of the schema's shapes (this process's rows drawn here)."""
        host = schema.synthetic(
            self.config, batch_size, processes=parallel.process_count(self.mesh), seed=seed
        )
        return parallel.to_global(host, parallel.batch_sharding(self.mesh))

    def train_step(self) -> Callable:
        """`step.train_step` jitted for the mesh: `(state, frozen, batch) -> (state, metrics)`."""
        return jit_train_step(self.nets, self.config, self.mesh)


def build(
    config: ml_collections.ConfigDict,
    mesh: Mesh | None = None,
    *,
    frozen: str = LOAD,
    check: bool = True,
) -> Run:
    """`config`'s run on `mesh` (default: config.mesh.data's devices); `Run.config` is `config`
    with data.derive decided for the mesh (`derive.resolve`): use it, not `config`, from here on.

    With `check` the config is validated first (the frozen networks' weights files too when
    they are loaded) and the batch size checked against the mesh; a checkpoint's own config
    (evaluation, export) is taken as it was trained. `frozen` is one of `FROZEN`. Nothing is
    computed on a device: the frozen weights are placed, the state is shapes (`init_state`).
    """
    if frozen not in FROZEN:
        raise ValueError(f"frozen must be one of {FROZEN}, got {frozen!r}")
    if check:
        config_checks.validate(config, weights_files=frozen != ABSTRACT)
    if mesh is None:
        mesh = parallel.create_mesh(config.mesh.data)
    # data.derive "auto" -> the device path on accelerator meshes: from the mesh's devices, so
    # compiling for a TPU slice from a CPU host (bench aot) compiles what the slice will run.
    config = derive.resolve(config, parallel.platform(mesh))
    if check:
        parallel.check_batch_size(config.batch_size, mesh)
    replicated = parallel.replicated(mesh)
    state, nets = abstract_train_state(config, sharding=replicated)
    frozen_networks = {
        LOAD: lambda: frozen_lib.load(config, replicated),
        ABSTRACT: lambda: frozen_lib.abstract(config, replicated),
        INFERENCE: lambda: frozen_lib.load(config, replicated, inference=True),
        NONE: dict,
    }[frozen]()
    return Run(config, mesh, nets, state, frozen_networks)
