"""Video input and output."""
