"""jaxcolor: high-throughput JAX training for anime line-art colorization."""

__version__ = "0.1.0"
