"""The one results schema: a typed record per run, unit-suffixed names, a schema version.

Every run (ok, failed or predicted) becomes one `RunRecord`; a results table is a list
of them written as parquet with an explicit Arrow schema, so column types never depend
on which values happened to be missing. Raw samples (step times, losses) are kept as
list columns and statistics are derived from them.

Units: `_s` seconds, `_bytes` bytes, `_per_s` per second, `_j` joules, `_flops` floating
point operations. Memory columns named `peak_*_bytes` come from the tensor-level tracker
(deterministic on CPU) and describe the tracked training step (`tracked_step`: the step of
the seeded sampler's plan that needs the most memory, chosen in advance by
`bench.stages.choose_probed_step` from the batches' memory drivers and their peaks on fake
tensors, never the first step, which has no optimizer state yet). `peak_rss_bytes` is the
kernel's high-water mark of the run's own process (VmHWM; with several ranks, the largest);
batches are collated in that process, with no data-loader workers.

The retrieval-quality columns are named by `bench.core.metric_names.eval_column` (eval_<role>_<metric>).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

import pyarrow as pa

from bench.core.metric_names import DIRECTION, EVAL_ROLES, eval_column

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "oom", "interrupted", "predicted")
SUCCESS = ("ok", "predicted")  # a row a resumed sweep keeps; anything else is measured again


@dataclass
class RunRecord:
    """One run of one configuration: what was asked, what happened, what it cost and bought."""

    # identity and outcome
    run_id: str
    config_hash: str
    status: str = "ok"
    error_type: str | None = None
    error_message: str | None = None
    schema_version: int = SCHEMA_VERSION
    created_at: str | None = None
    command: str | None = None

    # what was asked
    strategy: str | None = None
    objective: str | None = None
    strategy_params: str | None = None  # JSON: every parameter of the strategy, as configured
    alpha: float | None = None  # hybrid's probability of a monolingual batch (None for other strategies)
    n_languages: int | None = None
    languages: str | None = None  # comma-separated, in training order
    dataset: str | None = None
    seed: int | None = None
    model: str | None = None
    model_params: int | None = None
    tokenizer_policy: str | None = None
    tokenizer_name: str | None = None  # wordpiece-<content key>, or the pretrained model it belongs to
    vocab_size: int | None = None
    embedding_rows: int | None = None  # rows of the word-embedding table as trained (trimmed or not)
    vocabulary_trimmed: bool | None = None  # model.trim_vocabulary: only the rows the run's texts use
    embeddings_frozen: bool | None = None  # model.freeze_embeddings: no gradient, no optimizer state
    trainable_params: int | None = None
    mlm_head: str | None = None  # mbert: the checkpoint's head, or a new one tied to the embeddings
    budget: str | None = None  # "fixed" or "per_language"
    steps: int | None = None
    warmup_steps: int | None = None  # excluded from timing
    batch_size: int | None = None
    max_length: int | None = None
    temperature: float | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    lr_warmup_steps: int | None = None
    mode: str | None = None  # "train" or "predict"
    device_type: str | None = None
    n_devices: int | None = None
    threads: int | None = None
    launcher: str | None = None
    concurrency: int | None = None
    gather_negatives: bool | None = None
    mixed_precision: str | None = None

    # time
    wall_s: float | None = None
    init_s: float | None = None
    data_s: float | None = None
    tokenizer_s: float | None = None
    model_build_s: float | None = None
    train_s: float | None = None
    eval_s: float | None = None
    curve_eval_s: float | None = None  # evaluation during training (never part of train_s)
    measured_steps: int | None = None
    measured_s: float | None = None
    step_times_s: list[float] = field(default_factory=list)
    step_time_p50_s: float | None = None
    step_time_p90_s: float | None = None
    step_time_p99_s: float | None = None
    phase_data_s: float | None = None
    phase_forward_s: float | None = None
    phase_backward_s: float | None = None
    phase_optimizer_s: float | None = None
    timing_method: str | None = None

    # was the machine busy? (bench.measure.contention; over the run's lifetime)
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    voluntary_switches: int | None = None
    involuntary_switches: int | None = None
    load_avg_start: float | None = None
    load_avg_end: float | None = None
    other_cpu_s: float | None = None  # CPU seconds all other processes (and steal) took meanwhile
    contended: bool | None = None  # other_cpu_s / wall_s above profiler.contention_threshold

    # throughput (total work / total measured time)
    samples_per_s: float | None = None
    samples_per_s_per_device: float | None = None
    tokens_per_s: float | None = None  # including padding
    real_tokens_per_s: float | None = None  # padding excluded
    padding_fraction: float | None = None
    masked_tokens_per_step: float | None = None  # masked LM: positions the loss predicts, mean over measured steps
    length_cap_step_fraction: float | None = None  # measured steps whose widest text reached train.max_length

    # memory
    peak_tensor_bytes: int | None = None
    peak_param_bytes: int | None = None
    peak_grad_bytes: int | None = None
    peak_optimizer_bytes: int | None = None
    peak_activation_bytes: int | None = None
    tracked_step: int | None = None
    peak_rss_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None
    cuda_alloc_retries: int | None = None
    cuda_ooms: int | None = None
    nvml_used_bytes: int | None = None
    rank_peak_tensor_bytes: list[float] = field(default_factory=list)  # one per rank (several devices)
    rank_peak_rss_bytes: list[float] = field(default_factory=list)
    predicted: bool = False
    predicted_margin_bytes: int | None = None  # mode=predict: what a tensor tracker cannot see (CUDA context, workspaces...)
    predicted_error: float | None = None  # mode=predict: expected relative error of the tensor peak (0.05: ±5%)
    # mode=predict: the probed batch (the plan's step that needs the most memory)
    probed_batch_shapes: str | None = None  # its token-id tensors, e.g. "query_ids 100x57, passage_ids 100x128"
    probed_real_tokens: int | None = None  # text, padding excluded
    probed_padded_tokens: int | None = None  # positions computed, padding included
    probed_masked_tokens: int | None = None  # masked LM: positions the loss predicts; None for contrastive batches
    # mode=predict: the worst case beside it, the same step on texts at max_length (without padding, and with one
    # text per side a token short: the larger), masked LM at its Hoeffding bound (bench.stages.worst_case_batches)
    worst_batch_shapes: str | None = None
    worst_real_tokens: int | None = None  # all of worst_batch_shapes' positions, or all but the padded ones
    worst_masked_tokens: int | None = None
    worst_peak_tensor_bytes: int | None = None
    worst_margin_bytes: int | None = None  # the same allowances as predicted_margin_bytes, on the worst case's peak

    # work and energy
    probed_step_flops: float | None = None  # FLOPs counted on the probed step only (FlopCounterMode)
    # Estimates: the probed step's FLOPs per padded token times the window's padded tokens. Attention
    # grows with length squared, so steps shorter than the probed one are slightly over-counted.
    tflops_per_s_estimated: float | None = None
    mfu_estimated: float | None = None
    energy_j: float | None = None
    energy_method: str | None = None

    # what the batches really were
    mono_batch_fraction: float | None = None
    cross_pair_fraction: float | None = None
    languages_seen: str | None = None
    loss_curve: list[float] = field(default_factory=list)
    final_loss: float | None = None
    unk_rate_max: float | None = None
    unk_rate_by_lang: str | None = None  # JSON {lang: rate} over the evaluation languages

    # retrieval quality: macro averages per role (heldout: the run's held-out articles; zeroshot: an external set)
    eval_languages_seen: str | None = None
    eval_precision: str | None = None  # eval.precision: the encoder's forward pass (fp32 | bf16 autocast)
    eval_heldout_set: str | None = None
    eval_heldout_map_mono: float | None = None
    eval_heldout_map_cross: float | None = None
    eval_heldout_map_multi: float | None = None
    eval_heldout_rank_distance: float | None = None
    eval_heldout_ndcg10_multi: float | None = None
    eval_heldout_r1_multi: float | None = None
    eval_heldout_by_lang: str | None = None  # JSON {lang: {map_mono, map_cross_from, map_cross_to, map_multi}}
    eval_zeroshot_set: str | None = None
    eval_zeroshot_map_mono: float | None = None
    eval_zeroshot_map_cross: float | None = None
    eval_zeroshot_map_multi: float | None = None
    eval_zeroshot_rank_distance: float | None = None
    eval_zeroshot_ndcg10_multi: float | None = None
    eval_zeroshot_r1_multi: float | None = None

    # quality against cost during training (eval.curve), and the cost to reach eval.curve.target
    curve_set: str | None = None
    curve_metric: str | None = None
    curve_steps: list[float] = field(default_factory=list)
    curve_samples: list[float] = field(default_factory=list)
    curve_train_s: list[float] = field(default_factory=list)
    curve_values: list[float] = field(default_factory=list)
    curve_summaries: str | None = None  # JSON list, one {metric: value} per point: every summary metric (mono, multi, ...)
    target_value: float | None = None
    steps_to_target: int | None = None  # missing: not reached
    samples_to_target: int | None = None
    train_s_to_target: float | None = None

    # provenance
    git_commit: str | None = None
    git_dirty: bool | None = None
    code_tree: str | None = None  # hash of the commit's bench/, conf/, data/, pyproject.toml (bench.measure.provenance)
    python_version: str | None = None
    torch_version: str | None = None
    transformers_version: str | None = None
    device_name: str | None = None
    cpu_model: str | None = None
    bf16_support: str | None = None  # amx_bf16 | avx512_bf16 (native on this CPU) | cuda | emulated
    hostname: str | None = None
    rng_source: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def update(self, **values: Any) -> None:
        """Set several fields at once, refusing names the schema does not have."""
        for name, value in values.items():
            if name not in _FIELD_NAMES:
                raise KeyError(f"RunRecord has no field {name!r}")
            setattr(self, name, value)


_FIELD_NAMES = {f.name for f in dataclasses.fields(RunRecord)}


def _arrow_type(hint: Any) -> pa.DataType:
    if get_origin(hint) is list:
        return pa.list_(pa.float64())
    args = [a for a in get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if get_origin(base) is list:
        return pa.list_(pa.float64())
    return {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}[base]


def arrow_schema() -> pa.Schema:
    """The Arrow schema of a results table, derived from RunRecord's annotations."""
    hints = get_type_hints(RunRecord)
    fields = [pa.field(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(RunRecord)]
    return pa.schema(fields, metadata={"schema_version": str(SCHEMA_VERSION)})


def records_to_table(records: list[RunRecord]) -> pa.Table:
    schema = arrow_schema()
    rows = [dataclasses.asdict(r) for r in records]
    return pa.Table.from_pylist(rows, schema=schema)


def table_to_records(table: pa.Table) -> list[RunRecord]:
    """Rows back into records; columns the current schema lacks are dropped."""
    rows = table.to_pylist()
    return [RunRecord(**{k: v for k, v in row.items() if k in _FIELD_NAMES}) for row in rows]


# ---------------------------------------------------------------- the metric catalogue


@dataclass(frozen=True)
class Metric:
    """One measured (or derived) column and everything the readers of results need to know about it.

    `fit`, `plot`, `report`, `check` and the notebook read this catalogue; none keeps a list of its own.
    """

    column: str
    label: str
    kind: str  # seconds | bytes | rate | score: how values are scaled for display
    direction: str  # "lower" or "higher": which way is better
    unit: str = ""  # shown as given for rates and scores ("samples/s"); seconds and bytes get s/ms, MiB/GiB
    fitted: bool = False  # fitted against the number of languages: cost per added language (growth_fit)
    gate: str | None = None  # bench.check: "tensor" (±tolerance), "rss" (+tolerance), "info" (reported only)
    figure: str | None = None  # the figure it is drawn in (bench.results.figures)
    reported: bool = False  # a table of its own in report.md
    censored: bool = False  # missing where a run never got there (target set, not reached): counted, never dropped


def _quality(role: str) -> tuple[Metric, ...]:
    where = {"heldout": "held-out", "zeroshot": "zero-shot"}[role]

    def score(metric: str, label: str, **drawn) -> Metric:
        return Metric(eval_column(role, metric), f"{label} ({where})", "score", DIRECTION[metric], **drawn)

    drawn = {"figure": f"quality_{role}", "reported": True}
    return (
        score("map_mono", "Monolingual mAP", **drawn),
        score("map_cross", "Cross-lingual mAP", **drawn),
        score("map_multi", "Multilingual mAP", **drawn),
        score("rank_distance", "Max rank distance", **drawn),
        score("ndcg10_multi", "Multilingual nDCG@10"),
        score("r1_multi", "Multilingual recall@1"),
    )


METRICS: tuple[Metric, ...] = (
    Metric("wall_s", "Wall time per run", "seconds", "lower", fitted=True, gate="info", figure="wall_time", reported=True),
    Metric("train_s", "Training time per run", "seconds", "lower", fitted=True, reported=True),
    Metric("train_s_per_example", "Training time per example", "seconds", "lower", fitted=True,
           figure="train_time_per_example", reported=True),  # fmt: skip
    Metric("step_time_p50_s", "Median step time", "seconds", "lower", fitted=True, gate="info"),
    Metric("forward_s_per_step", "forward", "seconds", "lower", fitted=True, figure="step_breakdown"),
    Metric("backward_s_per_step", "backward", "seconds", "lower", fitted=True, figure="step_breakdown"),
    Metric("optimizer_s_per_step", "optimizer", "seconds", "lower", fitted=True, figure="step_breakdown"),
    Metric("tokens_per_step", "Tokens per step (padding included)", "rate", "lower", "tokens", fitted=True, reported=True),
    Metric("padding_fraction", "Padding fraction of the tokens", "score", "lower", reported=True),
    Metric("masked_tokens_per_step", "Masked tokens per step", "rate", "lower", "tokens", fitted=True),
    Metric("length_cap_step_fraction", "Steps at the length cap", "score", "lower", reported=True),
    Metric("samples_per_s", "Throughput", "rate", "higher", "samples/s", fitted=True, figure="throughput", reported=True),
    Metric("tokens_per_s", "Throughput incl. padding", "rate", "higher", "tokens/s", fitted=True, figure="throughput",
           reported=True),  # fmt: skip
    Metric("peak_tensor_bytes", "Peak tensor memory", "bytes", "lower", fitted=True, gate="tensor",
           figure="peak_tensor_memory", reported=True),  # fmt: skip
    Metric("peak_param_bytes", "parameters", "bytes", "lower", fitted=True, gate="tensor", figure="memory_breakdown"),
    Metric("peak_grad_bytes", "gradients", "bytes", "lower", fitted=True, gate="tensor", figure="memory_breakdown"),
    Metric("peak_optimizer_bytes", "optimizer state", "bytes", "lower", fitted=True, gate="tensor", figure="memory_breakdown"),
    Metric("peak_activation_bytes", "activations", "bytes", "lower", fitted=True, gate="tensor", figure="memory_breakdown",
           reported=True),  # fmt: skip
    Metric("peak_rss_bytes", "Peak RSS", "bytes", "lower", fitted=True, gate="rss", figure="peak_rss", reported=True),
    *(metric for role in EVAL_ROLES for metric in _quality(role)),
    Metric("steps_to_target", "Steps to the target quality", "rate", "lower", "steps", fitted=True, figure="cost_to_target",
           reported=True, censored=True),  # fmt: skip
    Metric("samples_to_target", "Samples to the target quality", "rate", "lower", "samples", fitted=True, censored=True),
    Metric("train_s_to_target", "Training time to the target quality", "seconds", "lower", fitted=True,
           figure="cost_to_target", reported=True, censored=True),  # fmt: skip
)
METRIC = {m.column: m for m in METRICS}


def metrics_where(**wanted) -> tuple[Metric, ...]:
    """The catalogue's metrics whose attributes equal `wanted`, e.g. `metrics_where(gate="tensor")`."""
    return tuple(m for m in METRICS if all(getattr(m, key) == value for key, value in wanted.items()))
