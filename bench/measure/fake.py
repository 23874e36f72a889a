"""Training steps on fake tensors, as a given device would run them: nothing is allocated.

`fake_step_peak` builds the objective and AdamW inside `FakeTensorMode`, runs the step it is given
(the run's own training step, `bench.training.loop.train_step`, on one collated batch: `bench.stages`
passes it) once to create the optimizer state and tracks the next with the same `TensorMemoryTracker`
a real run uses, so the figure means what `peak_tensor_bytes` means. Fake tensors stay on the CPU (a fake `cuda` tensor
cannot run a backward pass in a CPU-only build). For a CPU target that is the real thing: equal to a
CPU run's peak to the byte in fp32. For a CUDA target, `CudaKernels` makes the choices CUDA would
make where they change what is stored: SDPA runs PyTorch's flash or memory-efficient kernel (their
meta kernels: output and log-sum-exp are kept, never the attention matrix; a boolean mask becomes an
aligned additive bias, as on CUDA); dropout is the fused kernel (a 1-byte mask, where the CPU path
keeps a full-precision noise tensor); mixed precision follows CUDA's autocast op lists
(`ATen/autocast_mode.h`), with its cache of down-cast weights; AdamW runs `foreach`, CUDA's default.
`RealIntegerOps` computes integer tensors (ids, masks, labels) for real, so data-dependent shapes
(the masked positions of the MLM head) come out right.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_leaves

from bench.measure.memory import MemoryPeak, TensorMemoryTracker


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
    """The two `Accelerator` methods a training step calls, doing what accelerate does on the target device."""

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


TrainingStep = Callable[[nn.Module, torch.optim.Optimizer, EmulatedAccelerator], object]
"""One full training step (forward, backward, optimizer) of the objective, with this optimizer and accelerator."""


def fake_step_peak(build_objective: Callable[[], nn.Module], build_optimizer: Callable[[nn.Module, bool], torch.optim.Optimizer],
                   step: TrainingStep, device_type: str, mixed_precision: str) -> tuple[MemoryPeak, nn.Module, EmulatedAccelerator]:  # fmt: skip
    """Peak tensor memory of one training `step` (after a first step made the optimizer state)."""
    accelerator = EmulatedAccelerator(device_type, mixed_precision)
    with FakeTensorMode(allow_non_fake_inputs=True), RealIntegerOps():
        objective = build_objective()
        # CUDA's AdamW default is foreach (a temporary as large as all parameters); on CPU it is a per-tensor loop.
        optimizer = build_optimizer(objective, device_type == "cuda")
        objective.train()
        step(objective, optimizer, accelerator)  # creates the optimizer state
        with TensorMemoryTracker(objective, optimizer) as tracker:
            step(objective, optimizer, accelerator)
    return tracker.peak, objective, accelerator
