"""The image file extensions jaxcolor reads, in one list: a training folder (`data.source=folder:`,
`prepare`, `bench quality --images`) and `colorize`'s `--sketch` globs and `--hints` directories
accept the same files. Every one decodes through `data/decode.py`. Pure Python."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
