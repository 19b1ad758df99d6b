"""What one training step needs: the state, the step, the losses, the frozen networks.

builder.py         `build(config, mesh)`: validated config -> mesh, networks, state (concrete
                   or abstract), frozen networks, batch shapes, the jitted step; every caller
                   (loop, benchmarks, AOT, evaluation, export) starts here
config_checks.py   `validate`: every config rule up front, one message per mistake
step.py            the jitted GAN step `step(state, frozen, batch)`
state.py           `TrainState`, `Networks` (static), how a state is created or shaped
losses.py          reconstruction, GAN, SSIM and hint losses
frozen.py          the frozen networks a step reads (sketch extractor, VGG-19): `NETWORKS`
sketcher.py, vgg.py  those two networks, loaded or as shapes
image_pool.py      the discriminator's history of generated images
pytorch_weights.py `config.init_from`: a fresh state's weights from PyTorch safetensors
"""
