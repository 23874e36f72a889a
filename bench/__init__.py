"""hybrid-batch-bench: how training cost and retrieval quality scale with the number of languages.

Flow: sweep -> run -> (data -> sampler -> model -> objective -> profiler) -> parquet -> plots.

The stack: a part imports only parts on lines below its own, never one beside it (`LAYERS`;
tests/test_layout.py keeps it, imports inside functions included):

    run, check, evaluate, plot, report, verdict, timecheck, answer   the commands: compose, build, run, write
    predict, sweep          commands others build on: a run's mode=predict, the check's grid of runs
    launch                  starting runs as fresh processes; the results directory's lock
    stages                  a run's stages, each from the typed RunConfig to plain objects
    config                  the edge: conf/ composed by Hydra and validated into one RunConfig
    results                 the row schema and metric catalogue, the store, fits, figures, reports, claims
    strategies, evaluation  batching policies (sampler, objective, collation); retrieval quality of an encoder
    training                objectives, the training loop, ranks of one run
    data                    LAReQA-style data, tokenizers, training pairs, collation into tensors
    models                  encoders and pretrained checkpoints
    measure                 timing, memory, FLOPs, energy, provenance: primitives that know no benchmark
    core                    plain types: pair references and batch plans, the metric vocabulary
    bench, errors           this package's root (PROJECT_ROOT, the stack); one-line user errors
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Repository root; shipped data and configs are resolved against it."""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("run", "check", "evaluate", "plot", "report", "verdict", "timecheck", "answer"),
    ("predict", "sweep"),
    ("launch",),
    ("stages",),
    ("config",),
    ("results",),
    ("strategies", "evaluation"),
    ("training",),
    ("data",),
    ("models",),
    ("measure",),
    ("core",),
    ("bench", "errors"),
)
"""The top-level parts of bench/ (a subpackage or a module; `bench` is this file), top first."""
