"""Tests of bench.measure.memory: the tensor-level tracker on tiny BERT steps, and the host/CUDA readers faked at the boundary."""

from __future__ import annotations

import contextlib
import functools
import sys
import types

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F
from transformers import BertConfig, BertModel

from bench.measure import memory
from bench.measure.memory import MemoryPeak, TensorMemoryTracker


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class DualEncoder(torch.nn.Module):
    """A shared tiny BERT for queries and passages, InfoNCE on [CLS] states (the shape of the real objective)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)  # fmt: skip
        self.encoder = BertModel(config, add_pooling_layer=False)

    def forward(self, queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        q = self.encoder(input_ids=queries).last_hidden_state[:, 0]
        p = self.encoder(input_ids=passages).last_hidden_state[:, 0]
        return F.cross_entropy(q @ p.T / 0.05, torch.arange(q.shape[0]))


class SingleEncoder(DualEncoder):
    """One encoder call per step, so the peak falls in the optimizer step where every gradient is live."""

    def forward(self, queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=queries).last_hidden_state.pow(2).mean()


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> None:
    model(*batch).backward()
    optimizer.step()
    optimizer.zero_grad()


def tracked_peak(batch_size: int = 4, length: int = 16, vocab_size: int = 500, fake: bool = False,
                 model_cls: type[DualEncoder] = DualEncoder) -> tuple[MemoryPeak, torch.nn.Module]:  # fmt: skip
    """Peak of step 2 (step 1 creates the optimizer state), on real or fake CPU tensors."""
    with FakeTensorMode() if fake else contextlib.nullcontext():
        torch.manual_seed(0)
        model = model_cls(vocab_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = (torch.randint(0, vocab_size, (batch_size, length)), torch.randint(0, vocab_size, (batch_size, length)))
        train_step(model, optimizer, batch)
        with TensorMemoryTracker(model, optimizer) as tracker:
            train_step(model, optimizer, batch)
    return tracker.peak, model


cached_peak = functools.lru_cache(tracked_peak)  # tests that only read a result share the run


def param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_identical_steps_give_identical_bytes():
    assert tracked_peak()[0] == tracked_peak()[0]


def test_breakdown_sums_to_total():
    peak, _ = cached_peak()
    assert peak.param_bytes + peak.grad_bytes + peak.optimizer_bytes + peak.activation_bytes == peak.total_bytes
    assert min(peak.param_bytes, peak.optimizer_bytes, peak.activation_bytes) > 0


def test_model_state_matches_the_analytic_count():
    peak, model = tracked_peak(batch_size=1, length=4, vocab_size=5000, model_cls=SingleEncoder)
    n_tensors = len(list(model.parameters()))
    assert peak.param_bytes == param_bytes(model)
    assert peak.grad_bytes == param_bytes(model)
    # AdamW keeps exp_avg and exp_avg_sq like the parameter, plus a float32 scalar `step` per parameter.
    assert peak.optimizer_bytes == 2 * param_bytes(model) + 4 * n_tensors


def test_dual_encoder_peak_is_before_gradients_exist():
    peak, model = cached_peak()
    assert peak.grad_bytes == 0  # the peak is at the end of the forward, activations all live
    assert peak.param_bytes == param_bytes(model)


@pytest.mark.parametrize("bigger", [{"batch_size": 8}, {"length": 32}])
def test_more_tokens_raise_activation_bytes_only(bigger):
    small, _ = cached_peak()
    large, _ = cached_peak(**bigger)
    assert large.activation_bytes > small.activation_bytes
    assert (large.param_bytes, large.optimizer_bytes) == (small.param_bytes, small.optimizer_bytes)


def test_larger_vocabulary_raises_param_and_optimizer_bytes():
    small, _ = cached_peak()
    large, _ = cached_peak(vocab_size=1000)
    assert large.param_bytes - small.param_bytes == 500 * 32 * 4
    assert large.optimizer_bytes > small.optimizer_bytes


def test_fake_tensors_give_the_same_peak_as_real_ones():
    real, _ = cached_peak()
    fake, model = cached_peak(fake=True)
    assert isinstance(next(model.parameters()), torch._subclasses.fake_tensor.FakeTensor)
    assert fake == real


def test_storages_freed_inside_are_subtracted():
    x = torch.zeros(1000)  # 4000 bytes, created outside: not counted
    model = torch.nn.Linear(1, 1, bias=False)
    with TensorMemoryTracker(model) as tracker:
        for _ in range(3):
            y = x + 1  # each result frees the previous one when `y` is rebound
        del y
    assert tracker.peak.total_bytes == 4 + 2 * 4000  # the weight, then old and new `y` briefly together
    assert tracker.peak.activation_bytes == 2 * 4000


def test_a_tracker_can_be_reused_and_leaves_no_hooks():
    torch.manual_seed(0)
    model = DualEncoder(500)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = (torch.randint(0, 500, (4, 16)), torch.randint(0, 500, (4, 16)))
    train_step(model, optimizer, batch)
    tracker = TensorMemoryTracker(model, optimizer)
    peaks = []
    for _ in range(2):
        with tracker:
            train_step(model, optimizer, batch)
        peaks.append(tracker.peak)
    assert peaks[0] == peaks[1] == cached_peak()[0]
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())
    assert not optimizer._optimizer_step_post_hooks


def test_peak_before_the_step_is_an_error():
    with pytest.raises(RuntimeError, match="before the tracked block"):
        TensorMemoryTracker(torch.nn.Linear(1, 1)).peak


# ---------------------------------------------------------------- host memory


def test_peak_rss_is_positive_and_reset_reports_its_outcome(tmp_path):
    assert memory.peak_rss_bytes() > 0
    assert isinstance(memory.reset_peak_rss(), bool)
    assert memory.reset_peak_rss(str(tmp_path / "missing" / "clear_refs")) is False


def test_vm_hwm_is_read_in_bytes(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  200 kB\nVmHWM:\t    1764 kB\nVmRSS:\t 1000 kB\n")
    assert memory._read_vm_hwm(str(status)) == 1764 * 1024
    assert memory._read_vm_hwm(str(tmp_path / "absent")) is None


# ---------------------------------------------------------------- CUDA and NVML, faked at the boundary


def test_cuda_readers_return_none_on_cpu():
    assert memory.cuda_memory_stats("cpu") is None
    assert memory.reset_cuda_peak("cpu") is False
    assert memory.nvml_used_bytes("cpu") is None


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA 'available' with one device whose allocator stats and UUID are canned."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    stats = {"allocated_bytes.all.peak": 1000, "reserved_bytes.all.peak": 2048, "num_alloc_retries": 3, "num_ooms": 1}
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device=None: stats)
    props = types.SimpleNamespace(uuid="7b0b9f47-aaaa-bbbb-cccc-0123456789ab")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)


def test_cuda_memory_stats_reads_the_allocator_counters(fake_cuda):
    assert memory.cuda_memory_stats("cuda:0") == memory.CudaMemoryStats(1000, 2048, 3, 1)


def test_reset_cuda_peak_resets_peaks_and_counters(fake_cuda, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("peak"))
    monkeypatch.setattr(torch.cuda, "reset_accumulated_memory_stats", lambda device=None: calls.append("accumulated"))
    assert memory.reset_cuda_peak("cuda:0") is True
    assert calls == ["peak", "accumulated"]


def make_fake_pynvml(used: int = 123_456_789, fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.calls = []

    def handle_by_uuid(uuid):
        if fail:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        module.calls.append(uuid)
        return "handle"

    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetHandleByUUID = handle_by_uuid
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(used=used, total=2 * used)
    return module


def test_nvml_used_bytes_picks_the_gpu_by_uuid(fake_cuda, monkeypatch):
    fake = make_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert memory.nvml_used_bytes("cuda:0") == 123_456_789
    assert fake.calls == ["GPU-7b0b9f47-aaaa-bbbb-cccc-0123456789ab"]


def test_nvml_failure_is_no_reading_not_an_error(fake_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(fail=True))
    assert memory.nvml_used_bytes("cuda:0") is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tracker_agrees_with_the_caching_allocator_on_cuda():
    """On a step whose peak is about 1 GiB, the allocator's peak is the tracker's plus what a tensor
    tracker cannot see: 512-byte rounding of each block and cuBLAS/attention workspaces (< 64 MiB)."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30000, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)  # fmt: skip
    model = DualEncoder(30000).to(device)
    model.encoder = BertModel(config, add_pooling_layer=False).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = (torch.randint(0, 30000, (32, 128), device=device), torch.randint(0, 30000, (32, 128), device=device))
    train_step(model, optimizer, batch)
    torch.cuda.synchronize()
    memory.reset_cuda_peak(device)
    with TensorMemoryTracker(model, optimizer) as tracker:
        train_step(model, optimizer, batch)
    torch.cuda.synchronize()
    allocator = memory.cuda_memory_stats(device)
    assert tracker.peak.total_bytes > 2**30 * 0.5  # large enough that the fixed slack below is small
    assert tracker.peak.total_bytes <= allocator.peak_allocated_bytes
    assert allocator.peak_allocated_bytes <= tracker.peak.total_bytes * 1.02 + 64 * 2**20


def _rss_file_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))


def test_a_forked_child_touching_its_parents_resident_file_pages_counts_them_again():
    """The run server's fork: without touch_pages the child's RSS lacks the library pages the parent's
    imports made resident; with it the child holds what the parent holds (bench/launch.py relies on it)."""
    import os

    from bench.measure.memory import resident_file_pages, touch_pages

    parent = _rss_file_kb()
    ranges = resident_file_pages()
    assert ranges and all(start < end for start, end in ranges)
    assert sum(end - start for start, end in ranges) >= 0.9 * parent * 1024  # the ranges are the RssFile
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only reads /proc and memory: safe after fork
        before = _rss_file_kb()
        touch_pages(ranges)
        os.write(write, f"{before} {_rss_file_kb()}".encode())
        os._exit(0)
    os.close(write)
    before, after = map(int, os.read(read, 100).split())
    os.waitpid(pid, 0)
    assert before < 0.5 * parent, "a fork leaves unwritten file pages out of the child's page tables"
    assert after >= 0.95 * parent
