"""Colour images in, training examples out: numpy and Grain on the host; the device forms of
the sketch and hint methods in JAX (device_*.py, derive.py), run inside the jitted steps.

sources.py       random-access sources: synthetic cartoons, image folders (local, gs://), TFDS
decode.py        the one decoder: any image file -> RGB uint8, or a reason to skip it
crop.py          random and centre crops at the training size
sketch.py        sketch methods (`SKETCHES`, mixes, augmentations; `register`)
hints.py         hint methods, one `HintSpec` each (`hint_spec`, `register`)
schema.py        the batch schema: keys, shapes and dtypes per config (and data.derive's path)
device_sketch.py the sketch methods' device (JAX) forms, per example
device_hints.py  the hint methods' device (JAX) forms, per example
derive.py        data.derive: "auto" decided from the mesh; `complete` makes a device-path
                 batch's sketches and hints inside the steps
pipeline.py      the Grain pipeline (`make_sources`, `train_dataset`, `eval_examples`) and the
                 `data.source` forms (`SourceSpec`, `register`)
tfds_builder.py  `python -m jaxcolor.prepare`: images -> a TFDS ArrayRecord dataset
throughput.py    `bench data`: images per second of the pipeline
"""
