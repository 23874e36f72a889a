"""hybrid-batch-bench: how training cost and retrieval quality scale with the number of languages.

Flow: sweep -> run -> (data -> sampler -> model -> objective -> profiler) -> parquet -> plots.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Repository root; shipped data and configs are resolved against it."""
