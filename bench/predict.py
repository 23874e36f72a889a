"""Peak training memory of one configuration, predicted on fake tensors: nothing is allocated.

    python -m bench.predict model=xlmr-base strategy=hybrid languages=11 train.batch_size=100 device=cuda --device-memory 80GB

Takes the same overrides as `python -m bench.run`: the second scenario over the run's stages
(`bench.stages`). The run's own data, sampler plan and probed-step choice give the step a real run
would track, and that real batch is replayed on fake tensors (`bench.measure.fake`): the figure means
what `peak_tensor_bytes` means, on the target device (`device=cpu`: equal to a CPU run's, to the
byte in fp32; `device=cuda`: CUDA's kernel choices emulated). What a tensor tracker cannot see (CUDA
context, workspaces, fragmentation) is a separate, documented `Margin`.

Beside the plan's maximum, a worst case no plan of the same settings exceeds (`bench.stages.worst_case_batches`):
the same step on batches whose texts fill train.max_length, with and without padding (the larger counts), and for
masked LM the most masked tokens its masking gives in practice (a Hoeffding bound, `predict.mask_delta` in
conf/config.yaml), with the same margin rules.

Expected error on CUDA (argued, not yet measured on a GPU; `test_cuda_prediction_matches_a_real_cuda_run`
checks it where one exists): the tensor peak within 5% of a CUDA run's `peak_tensor_bytes`, since the
emulated kernels return what the CUDA ones return. Not modelled: cuDNN attention (PyTorch prefers
flash/memory-efficient), autocast ops these encoders do not call, several devices (DDP buckets).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass

import torch

from bench.config import RunConfig, plan_runs
from bench.data.collate import Batch
from bench.errors import BenchError, exit_on_user_error
from bench.measure.fake import EmulatedAccelerator
from bench.measure.memory import MemoryPeak, peak_rss_bytes
from bench.measure.profiler import RunProfiler, provenance_fields
from bench.models.encoder import count_parameters
from bench.results.schema import RunRecord
from bench.stages import Prepared, RunPipeline, device_type, fake_peak, worst_case_batches

GiB = 1024**3
MiB = 1024**2

# Allowances for what the tensor tracker cannot see on CUDA (documented estimates, not measurements):
CUDA_CONTEXT_BYTES = 512 * MiB  # context + kernel images: typically 300-600 MiB (lazy loading keeps it low)
CUBLAS_WORKSPACE_BYTES = 64 * MiB  # cuBLAS + cuBLASLt workspaces, 32 MiB each on Hopper (8 MiB before)
FRAGMENTATION = 0.10  # caching-allocator reserved/allocated overhead incl. 512-byte rounding; varied batch shapes
# Prediction versus the tracker in a real run on that device (see the module docstring).
EXPECTED_ERROR = {"cpu": 0.0, "cuda": 0.05}


# ---------------------------------------------------------------- the prediction


@dataclass(frozen=True)
class Margin:
    """What the tensor tracker cannot see, reported apart from the tensor peak.

    On CUDA: context, library workspaces and allocator fragmentation (allowances, see the constants).
    On CPU: the host process without the model (interpreter, libraries, data, vocabulary), read from
    this process after data preparation. It leaves out the allocator's own overhead and what a real step's
    libraries map on first use, so a real run's peak RSS lies above tensor peak + this: by how much on the real
    architectures, `results/real-arch-cpu` (block prediction-check:real-arch-cpu in docs/experiments.md).
    """

    context_bytes: int = 0
    workspace_bytes: int = 0
    fragmentation_bytes: int = 0
    host_process_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.context_bytes + self.workspace_bytes + self.fragmentation_bytes + self.host_process_bytes


@dataclass(frozen=True)
class BatchSummary:
    """What a replayed batch held: its tensors' shapes and its tokens."""

    shapes: dict[str, tuple[int, ...]]
    real_tokens: int  # text, padding excluded
    padded_tokens: int  # positions computed, padding included
    masked_tokens: int | None  # masked LM: positions the loss predicts; None for a batch without labels

    @classmethod
    def of(cls, batch: Batch) -> BatchSummary:
        shapes = {k: tuple(v.shape) for k, v in batch.inputs.items()}
        return cls(shapes, batch.real_tokens, batch.padded_tokens, batch.masked_tokens)

    @property
    def widths(self) -> str:
        """The token-id tensors' shapes, e.g. 'query_ids 100x57, passage_ids 100x128'."""
        return ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in self.shapes.items() if k.endswith("_ids"))


@dataclass(frozen=True)
class Replay:
    """One batch's training step replayed on fake tensors: the batch, the step's tensor peak, the margin beside it."""

    batch: BatchSummary
    peak: MemoryPeak
    margin: Margin

    @property
    def total_bytes(self) -> int:
        return self.peak.total_bytes + self.margin.total_bytes


@dataclass(frozen=True)
class Prediction:
    """Predicted peak memory of a configuration's tracked training step, its worst case, and how they were obtained."""

    device_type: str
    mixed_precision: str
    kernels: str
    tracked_step: int
    probed: Replay  # the plan's step that needs the most memory
    worst: Replay  # texts at train.max_length, masked LM at its bound: what no plan of these settings exceeds
    model_params: int
    vocab_size: int
    elapsed_s: float

    @property
    def peak(self) -> MemoryPeak:
        return self.probed.peak

    @property
    def margin(self) -> Margin:
        return self.probed.margin

    @property
    def total_bytes(self) -> int:
        return self.probed.total_bytes

    @property
    def expected_error(self) -> float:
        return EXPECTED_ERROR[self.device_type]

    def fits(self, device_bytes: int) -> bool:
        return self.total_bytes <= device_bytes

    def record_fields(self) -> dict:
        """RunRecord columns of a predicted row (`status="predicted"`, `predicted=True`)."""
        probed, worst = self.probed.batch, self.worst.batch
        return {
            "status": "predicted",
            "predicted": True,
            "device_type": self.device_type,
            "n_devices": 1,
            "tracked_step": self.tracked_step,
            "peak_tensor_bytes": self.peak.total_bytes,
            "peak_param_bytes": self.peak.param_bytes,
            "peak_grad_bytes": self.peak.grad_bytes,
            "peak_optimizer_bytes": self.peak.optimizer_bytes,
            "peak_activation_bytes": self.peak.activation_bytes,
            "model_params": self.model_params,
            "vocab_size": self.vocab_size,
            "predicted_margin_bytes": self.margin.total_bytes,
            "predicted_error": self.expected_error,
            "probed_batch_shapes": probed.widths,
            "probed_real_tokens": probed.real_tokens,
            "probed_padded_tokens": probed.padded_tokens,
            "probed_masked_tokens": probed.masked_tokens,
            "worst_batch_shapes": worst.widths,
            "worst_real_tokens": worst.real_tokens,
            "worst_masked_tokens": worst.masked_tokens,
            "worst_peak_tensor_bytes": self.worst.peak.total_bytes,
            "worst_margin_bytes": self.worst.margin.total_bytes,
        }


def predict_memory(cfg: RunConfig, profiler: RunProfiler | None = None) -> Prediction:
    """Predict the tracked step's peak tensor memory of `cfg` on its target device, and its worst case, allocating
    nothing; the run's stages (data, tokenizer) are timed in `profiler` when one is given."""
    started = time.perf_counter()
    target = device_type(cfg.device)
    if target == "cpu" and cfg.train.mixed_precision == "fp16":
        raise BenchError("train.mixed_precision=fp16 needs CUDA; predict with device=cuda or use bf16")
    if cfg.train.devices > 1:
        raise BenchError("train.devices>1: bench.predict models one device (DDP's gradient buckets and gathered negatives are not modelled)")
    pipeline = RunPipeline(cfg, profiler)
    prepared = pipeline.prepared
    step, batch = pipeline.probed_batch()
    host_process_bytes = peak_rss_bytes(include_children=False)  # before any model exists, fake or not
    probed, objective = replay(cfg, prepared, batch, host_process_bytes)
    worst = max((replay(cfg, prepared, b, host_process_bytes)[0] for b in worst_case_batches(cfg, prepared)),
                key=lambda candidate: candidate.total_bytes)  # fmt: skip
    return Prediction(
        device_type=target,
        mixed_precision=cfg.train.mixed_precision,
        kernels=describe_kernels(target, cfg),
        tracked_step=step,
        probed=probed,
        worst=worst,
        model_params=count_parameters(objective.encoder),
        vocab_size=prepared.special.vocab_size,
        elapsed_s=time.perf_counter() - started,
    )


def replay(cfg: RunConfig, prepared: Prepared, batch: Batch, host_process_bytes: int) -> tuple[Replay, torch.nn.Module]:
    """`batch`'s training step on fake tensors, with the margin its target device adds; and the objective it built."""
    peak, objective, accelerator = fake_peak(cfg, prepared, batch)
    margin = margin_for(device_type(cfg.device), peak, accelerator, host_process_bytes)
    return Replay(BatchSummary.of(batch), peak, margin), objective


def margin_for(target: str, peak: MemoryPeak, accelerator: EmulatedAccelerator, host_process_bytes: int) -> Margin:
    """On CUDA the allowances (context, workspaces with this step's attention scratch, fragmentation of its peak);
    on CPU the host process without the model."""
    if target != "cuda":
        return Margin(host_process_bytes=host_process_bytes)
    workspaces = CUBLAS_WORKSPACE_BYTES + accelerator.kernels.attention_scratch_bytes
    return Margin(CUDA_CONTEXT_BYTES, workspaces, round(FRAGMENTATION * peak.total_bytes))


def predict_row(cfg: RunConfig, record: RunRecord) -> RunRecord:
    """mode=predict: the memory columns from one step on fake tensors; nothing is trained or allocated."""
    torch.set_num_threads(cfg.train.threads)
    profiler = RunProfiler(torch.device("cpu"), cfg.train.mixed_precision, cfg.profiler.contention_threshold)
    record.update(**predict_memory(cfg, profiler).record_fields(), **provenance_fields(torch.device("cpu")))
    record.update(**profiler.stage_fields())  # wall_s, data_s, tokenizer_s like a measured row's, and contention
    return record


def describe_kernels(device_type: str, cfg: RunConfig) -> str:
    if device_type == "cpu":
        return f"CPU kernels as a CPU run uses them (attention {cfg.model.attn_implementation}, autocast {cfg.train.mixed_precision})"
    attention = "flash/memory-efficient SDPA" if cfg.model.attn_implementation == "sdpa" else f"{cfg.model.attn_implementation} attention"
    autocast = "fp32" if cfg.train.mixed_precision == "no" else f"{cfg.train.mixed_precision} autocast (CUDA op lists)"
    return f"CUDA emulated: {attention}, fused dropout, {autocast}, AdamW foreach"


# ---------------------------------------------------------------- command line

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """`80GB` (10^9), `79.6GiB` (2^30), `24G` (read as GiB) or a plain byte count."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)\s*", text.lower())
    unit = match and (match.group(2) + "ib" if match.group(2) in ("k", "m", "g", "t") else match.group(2))
    if not match or unit not in _UNITS:
        raise BenchError(f"--device-memory: cannot read {text!r}; write e.g. 80GB, 79.6GiB or 24G")
    return int(float(match.group(1)) * _UNITS[unit])


def report(cfg: RunConfig, prediction: Prediction, device_bytes: int | None) -> str:
    p, m = prediction.peak, prediction.margin
    gib = lambda n: f"{n / GiB:8.3f} GiB"  # noqa: E731
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in prediction.probed.batch.shapes.items())
    worst = prediction.worst
    masked = worst.batch.masked_tokens
    masked = "" if masked is None else f", {masked:,} masked tokens (Hoeffding bound)"
    lines = [
        f"predicted peak training memory: {cfg.model.name}, {cfg.strategy.name}, {len(cfg.languages)} languages, "
        f"batch {cfg.train.batch_size}, max_length {cfg.train.max_length}, device {prediction.device_type}",
        f"  kernels:        {prediction.kernels}",
        f"  tracked step:   {prediction.tracked_step} (the planned step that needs the most memory; its batch: {shapes})",
        f"  parameters:     {prediction.model_params:,} (vocabulary {prediction.vocab_size:,})",
        f"  tensor peak     {gib(p.total_bytes)}   ({p.total_bytes:,} B; expected error ±{prediction.expected_error:.0%})",
        f"    parameters    {gib(p.param_bytes)}",
        f"    gradients     {gib(p.grad_bytes)}",
        f"    optimizer     {gib(p.optimizer_bytes)}",
        f"    activations   {gib(p.activation_bytes)}   (and temporaries)",
    ]
    if prediction.device_type == "cuda":
        lines += [
            f"  margin          {gib(m.total_bytes)}   (not tensors: allowances, see bench/predict.py)",
            f"    CUDA context  {gib(m.context_bytes)}",
            f"    workspaces    {gib(m.workspace_bytes)}   (cuBLAS, attention backward)",
            f"    fragmentation {gib(m.fragmentation_bytes)}   ({FRAGMENTATION:.0%} of the tensor peak)",
        ]
    else:
        lines.append(f"  margin          {gib(m.total_bytes)}   (host process without the model: Python, libraries, data)")
    lines.append(f"  total           {gib(prediction.total_bytes)}")
    lines += [
        f"  worst case      {gib(worst.total_bytes)}   (tensor peak {gib(worst.peak.total_bytes).strip()} + margin "
        f"{gib(worst.margin.total_bytes).strip()}; batch {worst.batch.widths}{masked}: texts at max_length)",
    ]
    if device_bytes is not None:
        verdict = "fits" if prediction.fits(device_bytes) else "does NOT fit"
        lines.append(f"  {verdict} in {device_bytes / GiB:.2f} GiB ({device_bytes / max(prediction.total_bytes, 1):.2f}x the total)")
    lines.append(f"  predicted in {prediction.elapsed_s:.1f}s, nothing allocated")
    return "\n".join(lines)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m bench.run")
    parser.add_argument("--device-memory", type=parse_bytes, help="say whether the prediction fits, e.g. 80GB")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    (planned,) = plan_runs("config", args.overrides, sweep=False)
    prediction = predict_memory(planned.config)
    print(report(planned.config, prediction, args.device_memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
