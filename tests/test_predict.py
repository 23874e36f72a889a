"""Tests of bench.predict: predictions on fake tensors against real runs, the CUDA kernel emulation, the CLI."""

from __future__ import annotations

import time

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from bench import predict
from bench.config import plan_runs
from bench.data.collate import masked_tokens_bound
from bench.measure.fake import CudaKernels
from bench.predict import GiB, parse_bytes, predict_memory
from bench.run import run_and_record
from bench.results.schema import RunRecord
from tests.conftest import quick_run

# Few steps of a small batch: the real run takes seconds, and still tracks step 2 or 3 after warm-up.
QUICK = ["eval=none", "device=cpu", *quick_run(steps=4, batch_size=16, warmup=1, max_length=64), "profiler.measure_energy=false"]


pytestmark = pytest.mark.usefixtures("fresh_accelerator")


def config(*overrides: str, tmp_path=None):
    results = [f"results.dir={tmp_path}"] if tmp_path else []
    (planned,) = plan_runs("config", [*QUICK, *overrides, *results], sweep=False)
    return planned.config


def assert_matches_real_run(cfg) -> None:
    record = run_and_record(cfg)
    assert record.status == "ok", f"the real run failed: {record.error_type}: {record.error_message}"
    prediction = predict_memory(cfg)
    assert prediction.tracked_step == record.tracked_step
    assert prediction.peak.param_bytes == record.peak_param_bytes
    assert prediction.peak.grad_bytes == record.peak_grad_bytes
    assert prediction.peak.optimizer_bytes == record.peak_optimizer_bytes
    if cfg.train.mixed_precision == "no":  # fp32: to the byte, the total and every component (the README's claim)
        assert prediction.peak.total_bytes == record.peak_tensor_bytes
        assert prediction.peak.activation_bytes == record.peak_activation_bytes
    else:  # bf16 autocast: one meta kernel keeps layer-norm statistics in another dtype (a few hundred bytes)
        assert abs(prediction.peak.total_bytes - record.peak_tensor_bytes) <= 1024


@pytest.mark.parametrize("strategy", ["hybrid", "mbert"])
def test_tiny_prediction_equals_the_measured_cpu_peak(strategy, tmp_path):
    # Contrastive and masked LM (whose loss indexes masked positions: a data-dependent shape).
    assert_matches_real_run(config("model=tiny", f"strategy={strategy}", "languages=2", tmp_path=tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["monolingual", "crosslingual", "hybrid", "mbert"])
@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_prediction_matches_real_cpu_runs_across_strategies_and_autocast(strategy, mixed_precision, tmp_path):
    cfg = config(f"strategy={strategy}", "languages=4", f"train.mixed_precision={mixed_precision}", tmp_path=tmp_path)
    assert_matches_real_run(cfg)


def test_record_fields_fill_a_predicted_row():
    fields = predict_memory(config("strategy=hybrid", "languages=2")).record_fields()
    record = RunRecord(run_id="x", config_hash="y")
    record.update(**fields)  # refuses names the schema lacks
    assert record.status == "predicted" and record.predicted is True
    assert record.peak_tensor_bytes == sum(fields[f"peak_{k}_bytes"] for k in ("param", "grad", "optimizer", "activation"))
    assert record.tracked_step >= 1 and record.device_type == "cpu" and record.predicted_error == 0.0
    assert record.probed_batch_shapes.startswith("query_ids 16x") and ", passage_ids 16x" in record.probed_batch_shapes
    assert record.probed_real_tokens < record.probed_padded_tokens and record.probed_masked_tokens is None
    assert record.worst_batch_shapes == "query_ids 16x64, passage_ids 16x64" and record.worst_masked_tokens is None
    assert record.worst_peak_tensor_bytes > record.peak_tensor_bytes and record.worst_margin_bytes > 0


@pytest.mark.parametrize("strategy", ["hybrid", "mbert"])
def test_the_worst_case_fills_the_length_cap_and_is_above_the_probed_step(strategy):
    prediction = predict_memory(config(f"strategy={strategy}", "languages=2", "device=cuda"))
    probed, worst = prediction.probed, prediction.worst
    assert all(shape == (prediction.probed.batch.shapes[name][0], 64) for name, shape in worst.batch.shapes.items())
    # Of the two full-width batches, the one with a padded position per side wins: the encoder keeps its attention
    # mask then (without any padding it drops it), which costs more than the two tokens it lacks.
    assert worst.batch.real_tokens == worst.batch.padded_tokens - 2 > probed.batch.real_tokens
    assert worst.peak.total_bytes >= probed.peak.total_bytes and worst.total_bytes >= probed.total_bytes
    assert worst.margin.context_bytes == probed.margin.context_bytes > 0  # the same margin rules
    assert worst.margin.fragmentation_bytes == round(predict.FRAGMENTATION * worst.peak.total_bytes)
    if strategy == "mbert":  # 32 sequences of 64 tokens, [CLS] and [SEP] not eligible; predict.mask_delta = 1e-9
        assert worst.batch.masked_tokens == masked_tokens_bound(32 * 62, 0.15, 1e-9) > probed.batch.masked_tokens > 0
    else:
        assert worst.batch.masked_tokens is None and probed.batch.masked_tokens is None


def test_the_worst_case_follows_the_vocabulary_not_the_plan():
    worst = lambda *o: predict_memory(config("strategy=mbert", *o)).worst  # noqa: E731
    two, four = worst("languages=2"), worst("languages=4")  # one fixed vocabulary, other plans
    assert two.peak == four.peak and two.batch == four.batch
    larger, smaller = worst("languages=2", "model.vocab_size=40000"), worst("languages=2", "model.vocab_size=20000")
    assert larger.peak.total_bytes > smaller.peak.total_bytes
    looser = worst("languages=2", "predict.mask_delta=0.01")
    assert looser.batch.masked_tokens < two.batch.masked_tokens and looser.peak.total_bytes < two.peak.total_bytes


def test_a_cuda_prediction_runs_here_and_drops_the_cpu_attention_matrices():
    # With dropout, CPU attention keeps its probabilities and a full-precision noise tensor; CUDA's fused kernels do not.
    cpu = predict_memory(config("strategy=hybrid", "languages=2", "model.dropout=0.1"))
    cuda = predict_memory(config("strategy=hybrid", "languages=2", "model.dropout=0.1", "device=cuda"))
    bf16 = predict_memory(config("strategy=hybrid", "languages=2", "model.dropout=0.1", "device=cuda", "train.mixed_precision=bf16"))
    assert cuda.device_type == "cuda" and cuda.margin.context_bytes > 0
    assert bf16.peak.activation_bytes < cuda.peak.activation_bytes < cpu.peak.activation_bytes
    assert cuda.peak.param_bytes == cpu.peak.param_bytes


# ---------------------------------------------------------------- the CUDA kernel emulation, op by op


class OpLog(TorchDispatchMode):
    """Records the ATen ops that run and the dtypes they return."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, torch.dtype | None]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        first = out[0] if isinstance(out, (tuple, list)) else out
        self.ops.append((func.__name__.split(".")[0], getattr(first, "dtype", None)))
        return out

    def names(self) -> list[str]:
        return [name for name, _ in self.ops]


def run_emulated(fn, dtype=None):
    with FakeTensorMode(), OpLog() as log:
        with CudaKernels(dtype):
            fn()
    return log


def qkv(requires_grad: bool = True):
    return [torch.randn(2, 4, 24, 64, requires_grad=requires_grad) for _ in range(3)]


def test_attention_with_a_padding_mask_runs_the_memory_efficient_kernel():
    def step():
        q, k, v = qkv()
        mask = torch.ones(2, 1, 24, 24, dtype=torch.bool)
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.1).sum().backward()

    names = run_emulated(step).names()
    assert "_scaled_dot_product_efficient_attention" in names
    assert "_scaled_dot_product_efficient_attention_backward" in names
    assert not any("softmax" in n or "dropout" in n for n in names)  # no attention matrix, no dropout mask


def test_half_precision_attention_without_a_mask_runs_flash():
    names = run_emulated(lambda: F.scaled_dot_product_attention(*qkv(), dropout_p=0.1), torch.bfloat16).names()
    assert "_scaled_dot_product_flash_attention" in names


def test_dropout_is_the_fused_kernel_with_a_bool_mask():
    log = run_emulated(lambda: F.dropout(torch.randn(8, 16, requires_grad=True), 0.1, True))
    assert ("native_dropout", torch.float32) in log.ops
    assert "bernoulli_" not in log.names()  # the CPU path's full-precision noise tensor


def test_autocast_policy_follows_cuda_lists():
    def step():
        x = torch.randn(4, 8, 16)
        weight = torch.randn(32, 16, requires_grad=True)
        hidden = F.linear(x, weight)  # lower precision, weight cast once and cached
        F.linear(x, weight)
        assert hidden.dtype == torch.bfloat16
        assert F.layer_norm(hidden, (32,)).dtype == torch.float32  # fp32 list
        assert hidden.softmax(-1).dtype == torch.float32  # fp32 output
        assert F.gelu(hidden).dtype == torch.bfloat16  # on neither list: input dtype

    log = run_emulated(step, torch.bfloat16)
    casts = [d for name, d in log.ops if name == "_to_copy"]
    assert casts.count(torch.bfloat16) == 3  # x twice (activations are not cached), the weight once


# ---------------------------------------------------------------- command line and speed


def test_cli_prints_the_breakdown_and_the_fit(capsys):
    assert predict.main([*QUICK, "strategy=hybrid", "languages=2", "device=cuda", "--device-memory", "80GB"]) == 0
    out = capsys.readouterr().out
    for word in ("tensor peak", "parameters", "optimizer", "activations", "CUDA context", "fits in 74.51 GiB",
                 "worst case", "query_ids 16x64, passage_ids 16x64: texts at max_length"):
        assert word in out


@pytest.mark.parametrize("argv", [["model=no-such-model"], ["--device-memory", "lots"], ["train.devices=2", "train.batch_size=16"]])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main([*QUICK, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") or "usage:" in err
    assert len(err.splitlines()) == 1 or "usage:" in err


def test_parse_bytes_units():
    assert parse_bytes("80GB") == 80 * 10**9
    assert parse_bytes("24G") == parse_bytes("24GiB") == 24 * GiB
    assert parse_bytes("1.5 MiB") == int(1.5 * 2**20)
    assert parse_bytes("123") == 123


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mbert-base", "xlmr-base", "labse"])
def test_base_architectures_predict_in_under_a_minute(model):
    started = time.perf_counter()
    prediction = predict_memory(config(f"model={model}", "strategy=hybrid", "languages=11", "device=cuda",
                                       "train.batch_size=100", "train.max_length=128"))  # fmt: skip
    assert time.perf_counter() - started < 60
    assert 5 * GiB < prediction.peak.total_bytes < 40 * GiB


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_prediction_matches_a_real_cuda_run(tmp_path):
    """The emulation's claim (EXPECTED_ERROR["cuda"]), checked where a GPU exists."""
    for mixed_precision in ("no", "bf16"):
        cfg = config("strategy=hybrid", "languages=2", "device=cuda", f"train.mixed_precision={mixed_precision}", tmp_path=tmp_path)
        record = run_and_record(cfg)
        prediction = predict_memory(cfg)
        assert prediction.peak.total_bytes == pytest.approx(record.peak_tensor_bytes, rel=predict.EXPECTED_ERROR["cuda"])
