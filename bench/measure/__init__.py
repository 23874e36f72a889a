"""Measurement primitives: one timer, one memory tracker, FLOPs, energy, provenance, and the run profiler."""
