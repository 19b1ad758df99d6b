"""Network families: one package each (spec.py, flax.py, torch.py), found by name in registry.py."""
