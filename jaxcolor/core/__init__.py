"""The bottom layer, pure Python; imports no other jaxcolor layer.

errors.py        the `JaxcolorError` types every entry point prints as one line
image_size.py    `image_size` (a side or (height, width)) -> (h, w)
image_files.py   the image file extensions every reader accepts
config_arg.py    a config file's named argument (`configs/pod.py:tpu=v4-32`), `parse_arg`
accelerators.py  Cloud TPU types -> chips, hosts, topology, published chip figures
slice_sizing.py  the per-chip batch rule of the slice-sized configs
platform_env.py  `skip_absent_tpu`: JAX stays on the CPU where no accelerator is attached
"""
