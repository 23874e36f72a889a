"""The one memory-tracking primitive: tensor-level peak of a training step, plus host and CUDA readers.

Every memory figure of a run comes from here:

* `TensorMemoryTracker` watches one full training step (forward, backward, optimizer step,
  zero_grad) and reports `MemoryPeak`: the peak of live tensor storage bytes and its split
  into parameters, gradients, optimizer state and everything else *at the moment of the
  peak*. It counts storage `nbytes`, the figure the CUDA caching allocator's peak is built
  from; the allocator's rounding to 512-byte blocks and its fragmentation are not modelled,
  nor are scratch buffers a kernel allocates and frees internally (cuBLAS, oneDNN workspaces).
* `peak_rss_bytes` / `reset_peak_rss` read and reset the kernel's resident-set high-water mark.
* `cuda_memory_stats`, `reset_cuda_peak` and `nvml_used_bytes` read the accelerator, and
  return None instead of touching CUDA or NVML on machines without them.

Why a small `TorchDispatchMode` tracker rather than `torch.distributed._tools.mem_tracker
.MemTracker`: MemTracker measured 1.7-2.7x slower per tracked step, raises when the same root
module is called twice in one step (a dual encoder encodes queries and passages with one
module) unless the caller wraps both calls in one parent, and attributes memory per module,
which we do not need. Its repeatability from step 2 on is matched here. The dispatch mode sees
every ATen op once, below autograd, so it tracks forward, backward and the optimizer alike with
no module hooks (about 1.2-1.3x per tracked step on a tiny BERT on CPU, mostly the cost of any
Python dispatch mode); it keeps running totals per kind, so the peak's breakdown costs nothing
extra; and it runs unchanged above `FakeTensorMode`, where the same step on fake tensors gives
the same bytes as on real ones (what `bench.predict` relies on). Its result depends only on the
sequence of ops, so two identical steps give identical bytes.

Which step to track: not the first, which has no optimizer state yet; the harness tracks the
step that needs the most memory (`bench.stages.choose_probed_step`: among the steps no other exceeds
in every memory driver, the largest peak on fake tensors), outside the timed window. To predict without
allocating, build the model and optimizer inside `FakeTensorMode()` (BertModel and AdamW
work there as they are), run one step to create the optimizer state, then track the next.
"""

from __future__ import annotations

import ctypes
import resource
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@dataclass(frozen=True)
class MemoryPeak:
    """Peak live tensor bytes of one step and what was live at that moment; the parts sum to the total."""

    total_bytes: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    # Everything else: activations, temporaries, module buffers, and the batch if it was
    # created (or moved to the device) inside the tracked block.
    activation_bytes: int


_PARAM, _GRAD, _OPTIMIZER = 0, 1, 2  # storage kinds with their own column; the rest are activations


class TensorMemoryTracker(TorchDispatchMode):
    """Context manager that records the peak of live tensor storage bytes while it is entered.

    Construct it with the model and optimizer so storages can be classified; storages that
    exist on entry (parameters, buffers, gradients, optimizer state) count as live from the
    start. Storages created inside are tracked from the op that returns them until they die.
    A storage becomes a gradient when autograd accumulates it into `.grad` (a post-accumulate
    hook) and optimizer state when `optimizer.step` returns (a step post-hook); until then it
    counts as an activation, so state created by the first step is classified only after it.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__()
        self._model = model
        self._optimizer = optimizer
        self._params = list(model.parameters())
        self._live: dict[int, int] = {}  # id of a storage's Python object -> its nbytes
        self._refs: dict[int, weakref.ref] = {}
        self._kind: dict[int, int] = {}  # storages that are parameters, gradients or optimizer state
        self._kind_bytes = [0, 0, 0]
        self._live_bytes = 0
        self._peak_bytes = -1
        self._peak_parts: tuple[int, int, int, int] | None = None  # total, param, grad, optimizer
        self._at_peak = False  # nothing was freed since the peak: reclassifying updates it
        self._hooks: list[Any] = []
        self._active = False

    @property
    def peak(self) -> MemoryPeak:
        """The result; available once the tracked step has run."""
        if self._peak_parts is None:
            raise RuntimeError("TensorMemoryTracker.peak is read before the tracked block ran")
        total, params, grads, optimizer = self._peak_parts
        return MemoryPeak(total, params, grads, optimizer, total - params - grads - optimizer)

    def __enter__(self) -> "TensorMemoryTracker":
        self._live_bytes, self._kind_bytes, self._peak_bytes = 0, [0, 0, 0], -1  # one tracker, one step at a time
        self._active = True
        for param in self._params:
            self._classify(param, _PARAM)
            if param.grad is not None:
                self._classify(param.grad, _GRAD)
            if param.requires_grad:
                self._hooks.append(param.register_post_accumulate_grad_hook(self._on_grad))
        for buffer in self._model.buffers():
            self._track(buffer)
        if self._optimizer is not None:
            self._on_optimizer_step()
            self._hooks.append(self._optimizer.register_step_post_hook(lambda *_: self._on_optimizer_step()))
        self._new_peak()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        result = super().__exit__(*exc)
        self._active = False
        for hook in self._hooks:
            hook.remove()
        # Dropping the weak references also drops their callbacks: frees after exit are not ours.
        self._refs.clear()
        self._live.clear()
        self._kind.clear()
        return result

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):  # the common case, without walking a pytree
            self._track(out)
        else:
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    self._track(leaf)
        return out

    def _on_grad(self, param: torch.Tensor) -> None:
        self._classify(param.grad, _GRAD)

    def _on_optimizer_step(self) -> None:
        for state in self._optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    self._classify(value, _OPTIMIZER)

    def _track(self, tensor: torch.Tensor) -> int | None:
        """Count the tensor's storage if it is new (or resized); returns its key."""
        storage = _storage_of(tensor)
        if storage is None:
            return None
        key, nbytes = id(storage), storage.nbytes()
        old = self._live.get(key)
        if old == nbytes:
            return key  # a view or an in-place result on a storage we already count
        if old is None:
            # The storage's Python object lives exactly as long as the storage (PyObject
            # preservation), so its weak-reference callback marks the free.
            self._refs[key] = weakref.ref(storage, lambda _ref, key=key: self._on_free(key))
        self._live[key] = nbytes
        self._live_bytes += nbytes - (old or 0)  # a resize changes the bytes of a known storage
        if key in self._kind:
            self._kind_bytes[self._kind[key]] += nbytes - (old or 0)
        if self._live_bytes > self._peak_bytes:
            self._new_peak()
        return key

    def _new_peak(self) -> None:
        self._peak_bytes = self._live_bytes
        self._peak_parts = (self._live_bytes, *self._kind_bytes)
        self._at_peak = True

    def _classify(self, tensor: torch.Tensor, kind: int) -> None:
        key = self._track(tensor)
        if key is None or self._kind.get(key) == kind:
            return
        if key in self._kind:
            self._kind_bytes[self._kind[key]] -= self._live[key]
        self._kind[key] = kind
        self._kind_bytes[kind] += self._live[key]
        if self._at_peak:  # still the peak's content, now known better (e.g. a gradient just accumulated)
            self._new_peak()

    def _on_free(self, key: int) -> None:
        if not self._active or key not in self._live:
            return
        nbytes = self._live.pop(key)
        self._live_bytes -= nbytes
        self._at_peak = self._at_peak and nbytes == 0
        if key in self._kind:
            self._kind_bytes[self._kind.pop(key)] -= nbytes
        self._refs.pop(key, None)


def _storage_of(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None  # sparse and other layouts without one storage


# ---------------------------------------------------------------- host memory

_PROC_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def peak_rss_bytes(include_children: bool = True) -> int:
    """High-water mark of resident memory of this process, plus the largest of its finished children.

    VmHWM is the kernel's own peak for this process (resettable, unlike ru_maxrss). For
    children (data-loader workers) the kernel keeps only the largest peak among those that
    have exited and been waited for (RUSAGE_CHILDREN.ru_maxrss, KiB on Linux), not their sum,
    so with several workers this is a lower bound on what the run held at once.
    """
    own = _read_vm_hwm()
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if include_children:
        own += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return own


def _read_vm_hwm(path: str = _PROC_STATUS) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    return None


def reset_peak_rss(path: str = _CLEAR_REFS) -> bool:
    """Reset VmHWM to the current RSS where the kernel allows it; True if it worked.

    The harness runs every run in a fresh process, so this is a second line of defence
    for callers that measure several things in one process.
    """
    try:
        with open(path, "w") as f:
            f.write("5")  # "5" resets the peak RSS, see proc(5) /proc/pid/clear_refs
        return True
    except OSError:
        return False


_PAGE = resource.getpagesize()
_PRESENT = 1 << 63  # /proc/pid/pagemap: the page is in this process's page tables


def resident_file_pages(maps: str = "/proc/self/maps", pagemap: str = "/proc/self/pagemap") -> list[tuple[int, int]]:
    """[start, end) address ranges of readable file-backed pages this process has resident (its RssFile).

    A forked child shares these pages but, for mappings never written (library code and read-only
    data), Linux leaves them out of the child's page tables until it touches them: the child's RSS
    lacks what its parent's imports touched (138 of 472 MB after `import bench.run`). `touch_pages`
    in the child restores the parent's resident set. Empty where /proc cannot be read."""
    ranges: list[tuple[int, int]] = []
    try:
        with open(maps) as listing, open(pagemap, "rb") as table:
            for line in listing:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or not fields[5].startswith("/") or not fields[1].startswith("r"):
                    continue  # anonymous, [heap] / [stack] / [vdso], or unreadable
                start, end = (int(x, 16) for x in fields[0].split("-"))
                table.seek(start // _PAGE * 8)
                entries = table.read((end - start) // _PAGE * 8)
                ranges += _present_runs(start, entries)
    except OSError:
        return []
    return ranges


def _present_runs(start: int, entries: bytes) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i, entry in enumerate(memoryview(entries).cast("Q")):
        if entry & _PRESENT:
            address = start + i * _PAGE
            if runs and runs[-1][1] == address:
                runs[-1] = (runs[-1][0], address + _PAGE)
            else:
                runs.append((address, address + _PAGE))
    return runs


def touch_pages(ranges: list[tuple[int, int]]) -> int:
    """Read one byte of every page in `ranges` (addresses of this process): each becomes resident in its
    page tables and counts in its RSS, as it would after the same work in this process. Pages touched."""
    touched = 0
    for start, end in ranges:
        for address in range(start, end, _PAGE):
            ctypes.string_at(address, 1)
            touched += 1
    return touched


# ---------------------------------------------------------------- CUDA and NVML


@dataclass(frozen=True)
class CudaMemoryStats:
    """The CUDA caching allocator's counters since the last reset."""

    peak_allocated_bytes: int
    peak_reserved_bytes: int
    alloc_retries: int
    ooms: int


def cuda_memory_stats(device: torch.device | str | int | None = None) -> CudaMemoryStats | None:
    """Peak allocated/reserved bytes, allocation retries and OOMs; None without CUDA."""
    if not _cuda_device(device):
        return None
    stats = torch.cuda.memory_stats(device)
    return CudaMemoryStats(
        peak_allocated_bytes=int(stats.get("allocated_bytes.all.peak", 0)),
        peak_reserved_bytes=int(stats.get("reserved_bytes.all.peak", 0)),
        alloc_retries=int(stats.get("num_alloc_retries", 0)),
        ooms=int(stats.get("num_ooms", 0)),
    )


def reset_cuda_peak(device: torch.device | str | int | None = None) -> bool:
    """Reset the allocator's peak counters (and retry/OOM counts); False without CUDA."""
    if not _cuda_device(device):
        return False
    torch.cuda.reset_peak_memory_stats(device)
    torch.cuda.reset_accumulated_memory_stats(device)
    return True


def nvml_used_bytes(device: torch.device | str | int | None = None) -> int | None:
    """Device memory in use as NVML sees it (all processes, context included); None if unreadable.

    The GPU is matched by UUID, because CUDA and NVML number devices differently when
    CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER reorder them.
    """
    if not _cuda_device(device):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByUUID(nvml_uuid(device))
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing, driver too old, or permissions: no reading, never a failure
        return None


def nvml_uuid(device: torch.device | str | int | None) -> str:
    """NVML's spelling of the device UUID: "GPU-" followed by the hyphenated hex form."""
    uuid = str(torch.cuda.get_device_properties(_device_index(device)).uuid)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _device_index(device: torch.device | str | int | None) -> int:
    if isinstance(device, int):
        return device
    index = None if device is None else torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def _cuda_device(device: torch.device | str | int | None) -> bool:
    """True when `device` names a CUDA device and CUDA is usable; never initialises CUDA otherwise."""
    if device is not None and not isinstance(device, int) and torch.device(device).type != "cuda":
        return False
    try:
        return torch.cuda.is_available()
    except Exception:
        return False

