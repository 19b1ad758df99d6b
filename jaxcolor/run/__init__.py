"""What runs a whole job on top of the training state and evaluation: the training loop
(`train_and_evaluate`), `bench train`/`e2e` (`benchmark.py`), ahead-of-time compilation for a Cloud
TPU slice (`aot.py`) and the quality benchmark (`quality.py`)."""
