"""Training pieces: objectives, the training loop, several devices per run."""
