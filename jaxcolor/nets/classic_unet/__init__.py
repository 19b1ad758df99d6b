"""The classic U-Net family: spec.py (pure Python), flax.py (NNX), torch.py (PyTorch twin)."""
