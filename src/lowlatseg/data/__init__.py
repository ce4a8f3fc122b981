"""Dataset readers and training augmentations."""
