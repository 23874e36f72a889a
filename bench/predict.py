"""Peak training memory of one configuration, predicted on fake tensors: nothing is allocated.

    python -m bench.predict model=xlmr-base strategy=hybrid languages=11 train.batch_size=100 device=cuda --device-memory 80GB

Takes the same overrides as `python -m bench.run`. The run's own data preparation, sampler plan
and `padded_volume` pick the step a real run would track (the largest planned batch, never
step 0) and that real batch is collated; the real architecture and AdamW are built inside
`FakeTensorMode`; one step creates the optimizer state and the next is tracked with the same
`TensorMemoryTracker` a run uses, so the figure means what `peak_tensor_bytes` means.

Target device. Fake tensors stay on the CPU (a fake `cuda` tensor cannot run a backward pass in
a CPU-only build). For `device=cpu` that is the real thing: the prediction equals a CPU run's
`peak_tensor_bytes` to the byte in fp32 (bf16 autocast: within a few hundred bytes, the dtype of
layer-norm statistics in one meta kernel). For `device=cuda`, `CudaKernels` makes the choices CUDA
would make where they change what is stored: SDPA runs PyTorch's flash or memory-efficient kernel
(their meta kernels: output and log-sum-exp are kept, never the attention matrix; a boolean mask
becomes an aligned additive bias, as on CUDA); dropout is the fused kernel (a 1-byte mask, where the
CPU path keeps a full-precision noise tensor); `train.mixed_precision` follows CUDA's autocast op
lists (`ATen/autocast_mode.h`), with its cache of down-cast weights; AdamW runs `foreach`, CUDA's
default. What a tensor tracker cannot see (CUDA context, workspaces, fragmentation) is a separate,
documented `Margin`.

Expected error on CUDA (argued, not yet measured on a GPU; `test_cuda_prediction_matches_a_real_cuda_run`
checks it where one exists): the tensor peak within 5% of a CUDA run's `peak_tensor_bytes`, since the
emulated kernels return what the CUDA ones return. Not modelled: cuDNN attention (PyTorch prefers
flash/memory-efficient), autocast ops these encoders do not call, several devices (DDP buckets).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import time
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_leaves

from bench.collate import Batch, padded_volume
from bench.compose import plan_runs
from bench.config import RunConfig
from bench.errors import BenchError, exit_on_user_error
from bench.memory import MemoryPeak, TensorMemoryTracker, peak_rss_bytes
from bench.model import count_parameters
from bench.profiler import RunProfiler
from bench.run import Prepared, build_objective, make_collate, plan_batches, prepare_data
from bench.timing import StepTimer
from bench.train import pick_probed_step, train_step

GiB = 1024**3
MiB = 1024**2

# Allowances for what the tensor tracker cannot see on CUDA (documented estimates, not measurements):
CUDA_CONTEXT_BYTES = 512 * MiB  # context + kernel images: typically 300-600 MiB (lazy loading keeps it low)
CUBLAS_WORKSPACE_BYTES = 64 * MiB  # cuBLAS + cuBLASLt workspaces, 32 MiB each on Hopper (8 MiB before)
FRAGMENTATION = 0.10  # caching-allocator reserved/allocated overhead incl. 512-byte rounding; varied batch shapes
# Prediction versus the tracker in a real run on that device (see the module docstring).
EXPECTED_ERROR = {"cpu": 0.0, "cuda": 0.05}


# ---------------------------------------------------------------- CUDA kernel choices, on CPU fake tensors


def _fn(*names: str) -> frozenset:
    """Python callables that reach the named ATen ops (function, method and operator spellings)."""
    found = set()
    for name in names:
        for owner in (torch, F, torch.Tensor, torch._C._nn):
            if hasattr(owner, name):
                found.add(getattr(owner, name))
    return frozenset(found)


# CUDA autocast's policy (ATen/autocast_mode.h), for the ops these encoders and objectives call.
LOWER_PRECISION = _fn("linear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "addmm", "baddbmm", "addbmm",
                      "einsum", "prelu", "conv1d", "conv2d", "conv3d")  # fmt: skip
FP32 = _fn("layer_norm", "exp", "log", "pow", "__pow__", "rsqrt", "reciprocal", "softplus", "cross_entropy",
           "nll_loss", "mse_loss", "l1_loss", "kl_div", "cosine_similarity", "normalize", "logsumexp", "norm", "group_norm")  # fmt: skip
FP32_OUTPUT = _fn("softmax", "log_softmax", "sum", "cumsum", "prod")  # computed in fp32 via dtype=, no input copy


class CudaKernels(TorchFunctionMode):
    """Runs the forward of CPU fake tensors through the kernels CUDA would choose.

    Attention and dropout are rerouted always; the autocast policy applies when a dtype is given.
    Entered only around the forward pass, like `autocast`, whose cast cache it clears on exit.
    """

    def __init__(self, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.dtype = autocast_dtype
        self._weights: dict[int, torch.Tensor] = {}  # autocast caches casts of leaf tensors that need grad
        self.attention_scratch_bytes = 0  # largest kernel-internal workspace of an attention backward

    def __exit__(self, *exc):
        self._weights.clear()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            return self._dropout(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            if self.dtype is not None:
                args, kwargs = self._cast(args, kwargs, self.dtype)
            return self._attention(*args, **kwargs)
        if self.dtype is not None and func in LOWER_PRECISION:
            args, kwargs = self._cast(args, kwargs, self.dtype)
        elif self.dtype is not None and func in FP32:
            args, kwargs = self._cast(args, kwargs, torch.float32)
        elif self.dtype is not None and func in FP32_OUTPUT and args and _is_half(args[0]) and kwargs.get("dtype") is None:
            kwargs = {**kwargs, "dtype": torch.float32}
        return func(*args, **kwargs)

    def _cast(self, args, kwargs, dtype: torch.dtype):
        def cast(value):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dtype == dtype:
                return value
            if dtype != torch.float32 and value.dtype != torch.float32:
                return value  # autocast only lowers fp32
            if value.is_leaf and value.requires_grad:
                if id(value) not in self._weights:
                    self._weights[id(value)] = value.to(dtype)
                return self._weights[id(value)]
            return value.to(dtype)

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    @staticmethod
    def _dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0 or inplace:
            return F.dropout(input, p, training, inplace)  # CUDA uses the unfused path for these too
        return torch.native_dropout(input, p, True)[0]  # the fused CUDA kernel keeps a bool mask

    def _attention(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        """PyTorch's CUDA SDPA: flash when allowed (half precision, no mask), else memory-efficient."""
        batch, heads, length, head_dim = query.shape
        self.attention_scratch_bytes = max(self.attention_scratch_bytes, _attention_scratch(batch, heads, length, head_dim))
        if attn_mask is None and _is_half(query) and head_dim <= 256:
            pad = -head_dim % 8  # the kernel wants head_dim a multiple of 8
            q, k, v = (F.pad(t, (0, pad)) if pad else t for t in (query, key, value))
            out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
            return out[..., :head_dim] if pad else out
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # an additive bias in the query dtype
            attn_mask = torch.where(attn_mask, 0.0, torch.scalar_tensor(-math.inf, dtype=query.dtype))
        if attn_mask is not None:
            if any(s % 8 for s in attn_mask.stride()[:-1]):  # memory-efficient needs an aligned bias
                last = attn_mask.shape[-1]
                attn_mask = F.pad(attn_mask, (0, -last % 8))[..., :last]
            attn_mask = attn_mask.expand(batch, heads, length, key.shape[-2])
        needs_lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, attn_mask, needs_lse, dropout_p, is_causal, scale=scale
        )[0]


class RealIntegerOps(TorchDispatchMode):
    """Computes the batch's integer and boolean tensors for real, so data-dependent shapes come out right.

    Fake tensors have no values, so `hidden[labels != -100]` (the MLM head) has no size, and HF's
    check for a batch without padding cannot run. Ops whose inputs are all real integer or boolean
    tensors (ids, masks, labels: a few KiB) therefore run on real tensors, and a boolean index into
    a fake tensor becomes the real positions it selects. The tracker above sees the same ops and
    storage sizes as in a real run; the floating-point work stays fake.
    """

    _INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default, torch.ops.aten.index_put_.default,
                 torch.ops.aten._index_put_impl_.default}  # fmt: skip

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if tensors and not any(isinstance(t, FakeTensor) or t.is_floating_point() for t in tensors):
            with _disable_current_modes():
                return func(*args, **kwargs)
        if func in self._INDEXING:
            args = (args[0], _positions(args[1]), *args[2:])
        return func(*args, **kwargs)


def _positions(indices: list) -> list:
    """Real boolean indices as the integer positions they select (one index per dimension they mask)."""
    expanded = []
    for index in indices:
        if isinstance(index, torch.Tensor) and not isinstance(index, FakeTensor) and index.dtype == torch.bool:
            with _disable_current_modes():
                expanded.extend(index.nonzero().unbind(1))
        else:
            expanded.append(index)
    return expanded


def _is_half(tensor) -> bool:
    return isinstance(tensor, torch.Tensor) and tensor.dtype in (torch.float16, torch.bfloat16)


def _attention_scratch(batch: int, heads: int, length: int, head_dim: int) -> int:
    """fp32 dQ accumulator and row statistics that fused attention backwards allocate internally."""
    rows = math.ceil(length / 128) * 128
    return batch * heads * rows * (math.ceil(head_dim / 8) * 8 + 1) * 4


class EmulatedAccelerator:
    """The two `Accelerator` methods `train_step` calls, doing what accelerate does on the target device."""

    def __init__(self, device_type: str, mixed_precision: str) -> None:
        self.device_type = device_type
        self.mixed_precision = mixed_precision
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
        self.kernels = CudaKernels(dtype) if device_type == "cuda" else None
        self._cpu_dtype = dtype

    def autocast(self):
        if self.kernels is not None:
            return self.kernels
        if self._cpu_dtype is not None:  # the real CPU autocast: fake CPU tensors go through it as real ones do
            return torch.autocast("cpu", dtype=self._cpu_dtype)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss = loss / 1  # accelerate divides by gradient_accumulation_steps: one more live scalar
        if self.mixed_precision == "fp16" and self.device_type == "cuda":
            loss = loss * 65536.0  # GradScaler.scale (its in-place unscale adds nothing)
        loss.backward()


# ---------------------------------------------------------------- the prediction


@dataclass(frozen=True)
class Margin:
    """What the tensor tracker cannot see, reported apart from the tensor peak.

    On CUDA: context, library workspaces and allocator fragmentation (allowances, see the constants).
    On CPU: the host process without the model (interpreter, libraries, data, vocabulary), read from
    this process after data preparation; on the check grid a real run's peak RSS was 3-10% above
    tensor peak + this.
    """

    context_bytes: int = 0
    workspace_bytes: int = 0
    fragmentation_bytes: int = 0
    host_process_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.context_bytes + self.workspace_bytes + self.fragmentation_bytes + self.host_process_bytes


@dataclass(frozen=True)
class Prediction:
    """Predicted peak memory of a configuration's tracked training step, and how it was obtained."""

    device_type: str
    mixed_precision: str
    kernels: str
    tracked_step: int
    batch_shapes: dict[str, tuple[int, ...]]
    peak: MemoryPeak
    margin: Margin
    model_params: int
    vocab_size: int
    elapsed_s: float

    @property
    def total_bytes(self) -> int:
        return self.peak.total_bytes + self.margin.total_bytes

    @property
    def expected_error(self) -> float:
        return EXPECTED_ERROR[self.device_type]

    def fits(self, device_bytes: int) -> bool:
        return self.total_bytes <= device_bytes

    def record_fields(self) -> dict:
        """RunRecord columns of a predicted row (`status="predicted"`, `predicted=True`)."""
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
        }


def target_device(cfg: RunConfig) -> str:
    """The device type predicted for: `auto` means this machine's, as a run would resolve it."""
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def probed_batch(cfg: RunConfig) -> tuple[Prepared, int, Batch]:
    """The run's data, the step it would track and that step's real collated batch."""
    prepared = prepare_data(cfg, RunProfiler(torch.device("cpu")))
    plan = plan_batches(cfg, prepared.pairs)
    mlm = cfg.strategy.objective == "mlm"
    step = pick_probed_step([padded_volume(refs, prepared.tokenized, mlm) for refs in plan], cfg.train.warmup_steps)
    if step is None:
        raise BenchError(f"nothing to predict: a run of {cfg.steps} step(s) tracks no step; raise train.steps or train.steps_per_language")
    return prepared, step, make_collate(cfg, prepared)(step, plan[step])


def predict_memory(cfg: RunConfig) -> Prediction:
    """Predict the tracked step's peak tensor memory of `cfg` on its target device, allocating nothing."""
    started = time.perf_counter()
    device_type = target_device(cfg)
    if device_type == "cpu" and cfg.train.mixed_precision == "fp16":
        raise BenchError("train.mixed_precision=fp16 needs CUDA; predict with device=cuda or use bf16")
    if cfg.train.devices > 1:
        raise BenchError("train.devices>1: bench.predict models one device (DDP's gradient buckets and gathered negatives are not modelled)")
    prepared, step, batch = probed_batch(cfg)
    host_process_bytes = peak_rss_bytes(include_children=False)  # before any model exists, fake or not
    accelerator = EmulatedAccelerator(device_type, cfg.train.mixed_precision)
    with FakeTensorMode(allow_non_fake_inputs=True), RealIntegerOps():
        objective = build_objective(cfg, prepared.tokenizer)
        # CUDA's AdamW default is foreach (a temporary as large as all parameters); on CPU it is a per-tensor loop.
        optimizer = torch.optim.AdamW(objective.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                      foreach=device_type == "cuda")  # fmt: skip
        objective.train()
        train_step(objective, optimizer, accelerator, batch, StepTimer())  # creates the optimizer state
        with TensorMemoryTracker(objective, optimizer) as tracker:
            train_step(objective, optimizer, accelerator, batch, StepTimer())
        n_params = count_parameters(objective.encoder)
    if device_type == "cuda":
        workspaces = CUBLAS_WORKSPACE_BYTES + accelerator.kernels.attention_scratch_bytes
        margin = Margin(CUDA_CONTEXT_BYTES, workspaces, round(FRAGMENTATION * tracker.peak.total_bytes))
    else:
        margin = Margin(host_process_bytes=host_process_bytes)
    return Prediction(
        device_type=device_type,
        mixed_precision=cfg.train.mixed_precision,
        kernels=describe_kernels(device_type, cfg),
        tracked_step=step,
        batch_shapes={k: tuple(v.shape) for k, v in batch.inputs.items()},
        peak=tracker.peak,
        margin=margin,
        model_params=n_params,
        vocab_size=prepared.special.vocab_size,
        elapsed_s=time.perf_counter() - started,
    )


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
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in prediction.batch_shapes.items())
    lines = [
        f"predicted peak training memory: {cfg.model.name}, {cfg.strategy.name}, {len(cfg.languages)} languages, "
        f"batch {cfg.train.batch_size}, max_length {cfg.train.max_length}, device {prediction.device_type}",
        f"  kernels:        {prediction.kernels}",
        f"  tracked step:   {prediction.tracked_step} (largest planned batch: {shapes})",
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
