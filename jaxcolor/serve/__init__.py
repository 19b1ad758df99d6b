"""HTTP serving of an export (PyTorch, no JAX): `python -m jaxcolor.serve`."""
