"""Colour images in, training examples out (numpy and Grain; no JAX).

sources.py       random-access sources: synthetic cartoons, image folders (local, gs://), TFDS
decode.py        the one decoder: any image file -> RGB uint8, or a reason to skip it
crop.py          random and centre crops at the training size
sketch.py        sketch methods (`SKETCHES`, mixes, augmentations; `register`)
hints.py         hint methods, one `HintSpec` each (`hint_spec`, `register`)
schema.py        the batch schema: keys, shapes and dtypes per config
pipeline.py      the Grain pipeline (`make_sources`, `train_dataset`, `eval_examples`) and the
                 `data.source` forms (`SourceSpec`, `register`)
tfds_builder.py  `python -m jaxcolor.prepare`: images -> a TFDS ArrayRecord dataset
throughput.py    `bench data`: images per second of the pipeline
"""
