"""Tests for bench.results.summary: a sweep ends by pointing at its report and saying what one more language costs,
from the fits the report and the figures use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_plot import synthetic_records  # the shared synthetic results set

from bench.results.fit import usable_runs
from bench.results.growth import growth_fits
from bench.results.markdown import REPORT_FILE
from bench.results.numbers import slope_text
from bench.results.schema import records_to_table
from bench.results.store import load_results, write_run
from bench.results.summary import cost_lines
from bench.sweep import report


def _runs(seeds):
    return usable_runs(records_to_table(synthetic_records(seeds=seeds, datasets=(), failed=False)).to_pandas())


def _expected(runs, strategy: str, metric: str, kind: str) -> str:
    fit = growth_fits(runs, [metric]).set_index("strategy").loc[strategy]
    return slope_text(fit["slope"], fit["slope_ci_low"], fit["slope_ci_high"], fit["shape"], kind)


@pytest.mark.parametrize(("seeds", "interval"), [((0, 1, 2), "(t over 3 seeds)"), ((0,), "(one seed: no interval)")])
def test_cost_lines_give_each_strategys_cost_per_added_language_from_the_fits(seeds, interval):
    runs = _runs(seeds)
    lines = cost_lines(runs)
    assert lines[0].startswith("what one more training language costs") and len(lines) == 5
    for strategy in ("monolingual", "crosslingual", "hybrid", "mbert"):
        line = next(line for line in lines if line.split()[0] == strategy)
        step = _expected(runs, strategy, "step_time_p50_s", "seconds")
        memory = _expected(runs, strategy, "peak_tensor_bytes", "bytes")
        assert f"time per step {step.removesuffix(' ' + interval)}" in line, line
        assert f"peak tensor memory {memory}" in line, line
        assert "k=" not in line
    assert lines[3].endswith(interval) and lines[3].count(interval) == 1, lines[3]  # hybrid: its method named once


def test_the_sweep_ends_with_its_report_and_what_a_language_costs(tmp_path, capsys):
    records = synthetic_records(seeds=(0,), languages=(2, 4, 8), datasets=(), failed=False)
    for record in records:
        write_run(tmp_path, record)
    planned = [SimpleNamespace(config=SimpleNamespace(run_id=r.run_id, results=SimpleNamespace(dir=str(tmp_path))))
               for r in records]  # fmt: skip
    assert report(tmp_path, planned) == 0
    out = capsys.readouterr().out
    assert f"report:  {tmp_path / REPORT_FILE}" in out and (tmp_path / REPORT_FILE).is_file()
    assert "\n".join(cost_lines(usable_runs(load_results(tmp_path)))) in out
