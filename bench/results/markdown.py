"""A Markdown report of one results directory: what ran, where, what it cost, how it scales, what failed.

`write_report` (what `python -m bench.report` calls) writes RESULTS_DIR/report.md: configuration and
environment summaries, one table per `reported` metric of the catalogue (rows: strategy, columns:
number of languages L, cells: median over seeds with its min–max range), what each added language
costs (bench.results.growth), the unsuccessful runs, and the figures embedded by relative links (drawn
first if any is missing, or with `replot`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.metric_names import EVAL_ROLES, eval_column
from bench.evaluation.references import read_references
from bench.results.compare import paired_differences, paper_pattern
from bench.results.fit import PREDICTED, failed_runs, present_metrics, seed_summary, usable_runs
from bench.results.figures import (
    PLOTS_DIR, by_strategy, figure_plan, plot_results, strategy_styles, write_growth,
)  # fmt: skip
from bench.results.devices import VERDICT_NOTE, device_fit, device_rows, predicted_rows
from bench.results.prediction_check import prediction_pairs
from bench.results.growth import CRITERIA, growth_fits, step_cost_fits
from bench.results.numbers import display_unit, fmt, slope_text
from bench.results.store import load_results, read_sweeps
from bench.results.schema import METRIC, METRICS, metrics_where
from bench.errors import DataError

REPORT_FILE = "report.md"
CONFIG_FIELDS = [  # (column, label) summarised as the distinct values seen
    ("strategy", "strategies"), ("n_languages", "language counts L"), ("seed", "seeds"), ("mode", "mode"),
    ("model", "model"), ("model_params", "model parameters"), ("objective", "objective"), ("dataset", "dataset"),
    ("budget", "budget"), ("steps", "steps"), ("batch_size", "batch size"), ("max_length", "max length"),
    ("lr", "learning rate"), ("strategy_params", "strategy parameters"), ("launcher", "launcher"),
]  # fmt: skip
ENV_FIELDS = [
    ("device_name", "device"), ("device_type", "device type"), ("n_devices", "devices"), ("cpu_model", "CPU"),
    ("threads", "threads"), ("torch_version", "torch"), ("transformers_version", "transformers"),
    ("python_version", "python"), ("mixed_precision", "mixed precision"),
    ("eval_precision", "evaluation precision"), ("hostname", "host"),
]  # fmt: skip
FAILED_COLUMNS = ["run_id", "strategy", "n_languages", "seed", "status", "error_type", "error_message"]


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table; cells are str()-ed, pipes escaped, newlines flattened."""

    def cell(value) -> str:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        return " ".join(text.split()).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _plain(value) -> str:
    """A table value as text: blanks for missing, integers without the '.0' that nulls force on int columns."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def distinct(df: pd.DataFrame, column: str) -> str:
    if column not in df or df[column].isna().all():
        return ""
    values = df[column].dropna().unique().tolist()
    if column == "strategy":
        return ", ".join(strategy_styles(values))
    try:
        values = sorted(values)
    except TypeError:
        pass
    return ", ".join(_plain(v) for v in values)


def summary_section(table: pd.DataFrame, runs: pd.DataFrame, failed: pd.DataFrame, results_dir: Path) -> str:
    counts = table["status"].value_counts() if "status" in table else pd.Series(dtype=int)
    head = (
        f"# Scaling report: `{results_dir}`\n\n"
        f"{len(table)} runs: {int(counts.get('ok', 0))} measured, {int(counts.get('predicted', 0))} predicted "
        f"(memory only), {len(failed)} unsuccessful."
    )
    config = [[label, distinct(runs if len(runs) else table, col)] for col, label in CONFIG_FIELDS]
    env = [[label, distinct(table, col)] for col, label in ENV_FIELDS]
    env.append(["git commit", _git(table)])
    return "\n\n".join([
        head, "## Configuration", _key_value_table(["setting", "value(s)"], config),
        "## Environment", _key_value_table(["item", "value(s)"], env),
    ])  # fmt: skip


def _key_value_table(header: list[str], rows: list[list[str]]) -> str:
    rows = [row for row in rows if row[1]]
    return markdown_table(header, rows) if rows else "Not recorded in these results."


def _git(table: pd.DataFrame) -> str:
    commits = distinct(table, "git_commit")
    dirty = "git_dirty" in table and table["git_dirty"].fillna(False).astype(bool).any()
    return f"{commits} (uncommitted changes present)" if commits and dirty else commits


def metric_table(runs: pd.DataFrame, column: str, kind: str, unit: str, order: list[str], censored: bool = False) -> tuple[str, str]:
    """(unit, Markdown table) of one metric: rows strategy (and source), columns L, median [min–max] cells.
    For a `censored` metric a run that had a target and never reached it counts as not reached (+inf), never
    dropped: the median is over all runs, and a cell says how many reached it."""
    summary = censored_summary(runs, column) if censored else seed_summary(runs, column).assign(reached=lambda d: d["n"])
    finite_max = summary["max"].abs().replace(math.inf, math.nan).max()
    divisor, unit = display_unit(kind, float(finite_max) if math.isfinite(finite_max) else 0.0, unit)
    levels = sorted(summary["n_languages"].unique())
    rows = []
    for (strategy, source), part in by_strategy(summary, order):
        by_l = part.set_index("n_languages")
        label = strategy + (" (predicted)" if source == PREDICTED else "")
        rows.append([label] + [_cell(by_l.loc[level], divisor) if level in by_l.index else "" for level in levels])
    return unit, markdown_table(["strategy"] + [f"L={level}" for level in levels], rows)


def censored_summary(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (strategy, source, L) over the runs that had a target: median with unreached runs as +inf, the range
    of the runs that reached it, how many did (`reached`) out of `n`."""
    targeted = runs[runs["target_value"].notna()] if "target_value" in runs else runs.iloc[0:0]
    values = pd.to_numeric(targeted[column], errors="coerce").fillna(math.inf)
    grouped = targeted.assign(value=values).groupby(["strategy", "source", "n_languages"], sort=True)["value"]
    reached = grouped.apply(lambda v: v[np.isfinite(v)])
    summary = grouped.agg(median="median", n="count")
    finite = reached.groupby(level=[0, 1, 2])
    summary = summary.join(finite.min().rename("min")).join(finite.max().rename("max")).join(finite.count().rename("reached"))
    return summary.reset_index().fillna({"reached": 0})


def _cell(stats: pd.Series, divisor: float) -> str:
    n, reached = int(stats["n"]), int(stats["reached"])
    if reached == 0:
        return f"not reached (0/{n})"
    median = fmt(stats["median"] / divisor) if math.isfinite(stats["median"]) else "not reached"
    spread = f"{fmt(stats['min'] / divisor)}–{fmt(stats['max'] / divisor)}" if reached >= 2 else fmt(stats["min"] / divisor)
    if reached < n:
        return f"{median} ({reached}/{n} reached: {spread})"
    return f"{median} [{spread}]" if n >= 2 else median


def metrics_section(runs: pd.DataFrame) -> str:
    order = list(strategy_styles(runs["strategy"].dropna().unique()))
    parts = ["## Results by strategy and number of languages",
             "Cells: median over seeds [min–max over seeds]; a single number is a single run."]  # fmt: skip
    for metric in metrics_where(reported=True):
        if metric.column in present_metrics(runs, [metric.column]):
            shown_unit, table = metric_table(runs, metric.column, metric.kind, metric.unit, order, metric.censored)
            better = f", {metric.direction} is better"
            parts += [f"### {metric.label}" + (f" ({shown_unit}{better})" if shown_unit else f" ({better[2:]})")
                      + f" — `{metric.column}`", table]  # fmt: skip
    return "\n\n".join(parts)


GROWTH_SHOWN = ("step_time_p50_s", "train_s", "peak_tensor_bytes", "peak_rss_bytes")  # the first screen's columns
MEMORY_PARTS = ("peak_param_bytes", "peak_grad_bytes", "peak_optimizer_bytes", "peak_activation_bytes")


def growth_table(growth: pd.DataFrame, order: list[str], metrics=GROWTH_SHOWN) -> str:
    """Rows (strategy, vocabulary policy), columns the metrics' cost per added language."""
    kinds = {m.column: (m.kind, m.label) for m in metrics_where()}
    metrics = [m for m in metrics if m in set(growth["metric"])]
    growth = growth.assign(tokenizer_policy=growth["tokenizer_policy"].fillna(""))
    cells = {(r.strategy, r.source, r.tokenizer_policy, r.metric): slope_text(r.slope, r.slope_ci_low, r.slope_ci_high, r.shape, kinds[r.metric][0])
             for r in growth.itertuples(index=False)}  # fmt: skip
    keys = sorted({k[:3] for k in cells}, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[1], k[2]))
    rows = [[strategy + (" (predicted)" if source == PREDICTED else ""), policy] + [cells.get((strategy, source, policy, m), "") for m in metrics]
            for strategy, source, policy in keys]  # fmt: skip
    return markdown_table(["strategy", "vocabulary"] + [f"{kinds[m][1]} per added language" for m in metrics], rows)


def growth_section(runs: pd.DataFrame, order: list[str]) -> str:
    """What each added language costs (intercept + slope · L), and what a token costs a step."""
    growth = growth_fits(runs)
    if growth.empty:
        return ""
    intro = ("## What each added language costs\n\n"
             "cost ≈ intercept + slope · L; the slope, with its 95% interval, is the cost of one more training "
             f"language. {CRITERIA} Every metric, intercept, curvature and R² is in `growth_fit.parquet`.")
    parts = [intro, growth_table(growth, order, GROWTH_SHOWN + MEMORY_PARTS)]
    steps = step_cost_fits(runs)
    if not steps.empty:
        rows = [[r.strategy, r.tokenizer_policy or "", r.driver, f"{fmt(r.fixed_s * 1e3)} ms",
                 _per_unit_text(r), f"{r.r2:.2f}", f"{r.driver_min:,.0f}–{r.driver_max:,.0f}"]
                for r in steps.itertuples(index=False)]  # fmt: skip
        parts += ["### Median step time against what a step does",
                  "Each step's time against tokens per step (padding included) and, for masked-LM, against its output "
                  "layer's work (vocabulary rows × expected masked tokens): a narrow range of the driver cannot pin a "
                  "per-unit cost down, so read the interval before the slope. Full table: `step_cost_fit.parquet`.",
                  markdown_table(["strategy", "vocabulary", "driver", "fixed cost of a step", "per unit of the driver",
                                  "R²", "driver range"], rows)]  # fmt: skip
    return "\n\n".join(parts)


def _per_unit_text(fit) -> str:
    """Seconds per unit of a driver with its interval, in scientific notation (units can be 1e-11 s)."""
    if not math.isfinite(fit.s_per_unit):
        return "–"
    bounded = math.isfinite(fit.s_per_unit_ci_low) and math.isfinite(fit.s_per_unit_ci_high)
    interval = f" [{fit.s_per_unit_ci_low:+.3g}, {fit.s_per_unit_ci_high:+.3g}]" if bounded else f" ({fit.interval})"
    flat = bounded and fit.s_per_unit_ci_low <= 0 <= fit.s_per_unit_ci_high
    return ("flat" if flat else f"{fit.s_per_unit:+.3g} s") + interval


def seeds_per_point(runs: pd.DataFrame) -> pd.Series:
    """Distinct seeds behind each point of a curve: one point per strategy, vocabulary policy and L (counting rows
    per (strategy, L) alone counts every vocabulary policy's seeds again)."""
    keys = [k for k in ("strategy", "tokenizer_policy", "n_languages") if k in runs]
    return runs.assign(**{k: runs[k].fillna("") for k in keys if k != "n_languages"}).groupby(keys)["seed"].nunique()


def growth_block(results_dir: Path) -> str:
    """The README's first-screen table (block `growth:<results dir name>`), from RESULTS_DIR's committed rows."""
    results_dir = Path(results_dir)
    runs = usable_runs(load_results(results_dir))
    runs = runs[runs["source"] != PREDICTED]
    order = list(strategy_styles(runs["strategy"].dropna().unique()))
    seeds = seeds_per_point(runs)
    per_point = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    head = (f"From `{results_dir.as_posix()}` ({len(runs)} measured runs, L = {distinct(runs, 'n_languages')}, "
            f"{per_point} seeds per point, {distinct(runs, 'model')} model, "
            f"{distinct(runs, 'cpu_model')}; `python -m bench.report {results_dir.as_posix()} --readme README.md` writes this block).")
    return head + "\n\n" + growth_table(growth_fits(runs), order)


def device_table(runs: pd.DataFrame) -> str:
    """Per model and strategy: predicted GiB at the ends of L and each card's verdict (bench.results.devices)."""
    fits = device_fit(runs)
    if fits.empty:
        return ""
    order = list(strategy_styles(fits["strategy"].unique()))
    fits = fits.assign(rank=fits["strategy"].map(order.index)).sort_values(["model", "batch_size", "mixed_precision", "rank"])
    return markdown_table(*device_rows(fits))


def device_section(runs: pd.DataFrame) -> str:
    table = device_table(runs)
    if not table:
        return ""
    intro = ("## Which GPU fits, up to which L (predicted)\n\n"
             "Predicted rows (`mode=predict`, nothing allocated): the tracked step's tensor peak plus the margin a tensor "
             "tracker cannot see (on CUDA: context 512 MiB, workspaces, 10% fragmentation). " + VERDICT_NOTE +
             " On CPU in fp32 a prediction equals a measured "
             "run's tensor peak to the byte (tested); on CUDA the kernels are emulated (expected error ±5%, not yet measured on a GPU).")
    return intro + "\n\n" + table


def devices_block(results_dir: Path) -> str:
    """A document's block `devices:<results dir name>`: the device-fit table of RESULTS_DIR's predicted rows."""
    results_dir = Path(results_dir)
    runs = usable_runs(load_results(results_dir))
    head = (f"From `{results_dir.as_posix()}` ({len(predicted_rows(runs))} predicted rows; "
            f"`python -m bench.report {results_dir.as_posix()} --readme FILE` writes this block).")
    return head + "\n\n" + (device_table(runs) or "No predicted rows.")


def prediction_check_section(runs: pd.DataFrame, results_dir: Path) -> str:
    text = prediction_check_text(runs, Path(results_dir))
    return f"## Predicted against measured, configuration by configuration\n\n{text}" if text else ""


def prediction_check_block(results_dir: Path) -> str:
    """A document's block `prediction-check:<results dir name>`: predicted against measured, configuration by configuration
    (bench.results.prediction_check), with the largest errors first in the head line."""
    results_dir = Path(results_dir)
    return prediction_check_text(usable_runs(load_results(results_dir)), results_dir) or (
        f"No configuration of `{results_dir.as_posix()}` was both measured and predicted.")


def prediction_check_text(runs: pd.DataFrame, results_dir: Path) -> str:
    """The predicted-against-measured table and its summary line; empty when no configuration has both rows."""
    pairs = prediction_pairs(runs)
    if pairs.empty:
        return ""
    mib = lambda n: fmt(n / 2**20)  # noqa: E731
    rows = [[r.model, r.strategy, r.n_languages, f"{r.model_params / 1e6:.1f} M", f"{r.embedding_rows:,.0f}",
             mib(r.measured_tensor_bytes), mib(r.predicted_tensor_bytes), f"{r.tensor_error:+.2%}",
             mib(r.measured_rss_bytes), mib(r.predicted_total_bytes), f"{r.rss_error:+.1%}"]
            for r in pairs.itertuples(index=False)]  # fmt: skip
    exact = int((pairs["predicted_tensor_bytes"] == pairs["measured_tensor_bytes"]).sum())
    precision = ", ".join(sorted({precision_label(p) for p in pairs["mixed_precision"]}))
    head = (f"From `{results_dir.as_posix()}` ({len(pairs)} configurations, each trained and predicted; "
            f"{precision}, batch {distinct(pairs, 'batch_size')}, max length "
            f"{distinct(pairs, 'max_length')}). Tensor peak: predicted equal to measured to the byte in {exact} of "
            f"{len(pairs)}, predicted / measured − 1 from "
            f"{pairs['tensor_error'].min():+.2%} to {pairs['tensor_error'].max():+.2%}; the total (tensor peak + the "
            f"host process before the model) against peak RSS from {pairs['rss_error'].min():+.1%} to "
            f"{pairs['rss_error'].max():+.1%}. `python -m bench.report {results_dir.as_posix()} --readme FILE` writes this block.")
    header = ["model", "strategy", "L", "parameters", "embedding rows", "tensor peak measured (MiB)", "predicted (MiB)",
              "error", "peak RSS measured (MiB)", "predicted total (MiB)", "error"]
    return head + "\n\n" + markdown_table(header, rows)


PROGRESS_METRICS = [(eval_column(role, m), f"{name} {label}") for role, name in (("heldout", "held-out"), ("zeroshot", "zero-shot"))
                    for m, label in (("map_mono", "mono"), ("map_multi", "multi"), ("rank_distance", "rank distance"))]  # fmt: skip


def progress_block(results_dir: Path) -> str:
    """A document's block `progress:<results dir name>`: every run any sweep into RESULTS_DIR planned (the union of
    sweeps.jsonl's launch orders and the rows), in run-id order, with its state, time, contention and quality."""
    results_dir = Path(results_dir)
    table = load_results(results_dir).drop_duplicates("run_id", keep="last").set_index("run_id")
    planned = sorted({run_id for sweep in read_sweeps(results_dir) for run_id in sweep.get("order", [])} | set(table.index))
    metrics = [(column, label) for column, label in PROGRESS_METRICS if column in table and table[column].notna().any()]
    rows, done = [], 0
    for run_id in planned:
        if run_id not in table.index:
            seed = re.search(r"-s(\d+)-[0-9a-f]+$", run_id)  # run ids end in -s<seed>-<config hash>
            rows.append([f"`{run_id}`", "", "", seed.group(1) if seed else "", "to run", "", ""] + [""] * len(metrics))
            continue
        row = table.loc[run_id]
        done += row["status"] in ("ok", "predicted")
        params = ", ".join(f"{k} {v}" for k, v in json.loads(row.get("strategy_params") or "{}").items() if k in ("alpha", "schedule"))
        rows.append([f"`{run_id}`", params, precision_label(row.get("mixed_precision")), _plain(row.get("seed")), row["status"],
                     fmt(row.get("wall_s")), "yes" if row.get("contended") else "no"]
                    + [fmt(row.get(column)) for column, _ in metrics])  # fmt: skip
    head = (f"From `{results_dir.as_posix()}`: {done} of {len(planned)} planned runs done "
            f"(`python -m bench.report {results_dir.as_posix()} --readme FILE` writes this block).")
    header = ["run", "strategy parameters", "training precision", "seed", "state", "wall s", "contended"] + [label for _, label in metrics]
    return head + "\n\n" + markdown_table(header, rows)


def precision_label(value) -> str:
    """A row's `mixed_precision` as a reader says it: 'no' is fp32."""
    return "" if value is None or value != value else ("fp32" if value == "no" else str(value))


RUN_STAGES = (("data_s", "runs: data (parse, split, pairs)"), ("tokenizer_s", "runs: tokenizer and tokenising"),
              ("model_build_s", "runs: model build"), ("train_s", "runs: training"), ("eval_s", "runs: evaluation"),
              ("curve_eval_s", "runs: evaluation during training"))  # fmt: skip


def time_breakdown(table: pd.DataFrame, sweeps: list[dict]) -> list[tuple[str, float]]:
    """Where the last finished sweep's wall time went: its own phases (sweeps.jsonl) and, inside its runs phase,
    the runs' stages (their rows) and what is left: each run's process start-up and launch."""
    finished = [i for i, entry in enumerate(sweeps) if "phases_s" in entry]
    if not finished:
        return []
    last = sweeps[finished[-1]]
    order = next((entry["order"] for entry in reversed(sweeps[: finished[-1]]) if "order" in entry), [])
    runs = table[table["run_id"].isin(order)] if "run_id" in table else table.iloc[0:0]
    phases = last["phases_s"]
    run_wall = float(pd.to_numeric(runs.get("wall_s"), errors="coerce").sum()) if len(runs) else 0.0
    stages = [(label, float(pd.to_numeric(runs[column], errors="coerce").sum())) for column, label in RUN_STAGES if column in runs]
    parts = [("sweep process start-up (interpreter, imports)", last.get("startup_s") or 0.0),
             ("planning (compose and validate every run)", phases.get("planning", 0.0)),
             ("machine calibration (start and end)", phases.get("calibration", 0.0) + phases.get("calibration_end", 0.0)),
             ("reference levels (chance, lexical, zero-shot)", phases.get("reference_levels", 0.0)),
             ("vocabularies", phases.get("vocabularies", 0.0)),
             ("runs: process start-up and launch", phases.get("runs", 0.0) - run_wall), *stages,
             ("runs: other (inside a run, between stages)", run_wall - sum(seconds for _, seconds in stages)),
             ("consolidation, figures, report", phases.get("report", 0.0))]  # fmt: skip
    return [(label, seconds) for label, seconds in parts if seconds > 0.0005]


def time_section(table: pd.DataFrame, sweeps: list[dict]) -> str:
    parts = time_breakdown(table, sweeps)
    if not parts:
        return ""
    total = sum(seconds for _, seconds in parts)
    rows = [[label, f"{seconds:,.1f}", f"{seconds / total:.0%}"] for label, seconds in parts]
    intro = ("## Where the sweep's time went\n\n"
             "The last finished sweep into this directory, from its sweeps.jsonl entry (its phases) and its runs' rows "
             f"(their stages): {total / 60:.1f} min in all. A regression shows up as a row that grew.")
    return intro + "\n\n" + markdown_table(["part", "seconds", "share"], rows + [["total", f"{total:,.1f}", "100%"]])


def time_block(results_dir: Path) -> str:
    """A document's block `time:<results dir name>`: where RESULTS_DIR's last finished sweep spent its time."""
    results_dir = Path(results_dir)
    section = time_section(load_results(results_dir), read_sweeps(results_dir))
    return section.split("\n\n", 1)[1] if section else "No finished sweep with phase times in this directory."


def metric_block(results_dir: Path, column: str) -> str:
    """A document's block `table:<results dir name>:<column>`: one metric's strategy x L table, from RESULTS_DIR."""
    results_dir = Path(results_dir)
    metric = METRIC.get(column)
    if metric is None:
        raise DataError(f"table block: {column!r} is not a metric of the catalogue (bench/results/schema.py)")
    runs = usable_runs(load_results(results_dir))
    order = list(strategy_styles(runs["strategy"].dropna().unique()))
    unit, table = metric_table(runs, column, metric.kind, metric.unit, order, metric.censored)
    units = f"{unit}, " if unit else ""
    how = ("median over seeds, a run that never reached the target counted as not reached [range of those that did]"
           if metric.censored else "median over seeds [min–max]")
    return f"{metric.label} ({units}{metric.direction} is better; {how}) — `{column}` in `{results_dir.as_posix()}`:\n\n{table}"


def document_blocks(results_dir: Path) -> dict[str, str]:
    """Every block a document can hold for RESULTS_DIR, by name: its growth table and one table per metric."""
    name = Path(results_dir).name
    return {f"growth:{name}": lambda: growth_block(results_dir), f"devices:{name}": lambda: devices_block(results_dir),
            f"prediction-check:{name}": lambda: prediction_check_block(results_dir),
            f"progress:{name}": lambda: progress_block(results_dir), f"time:{name}": lambda: time_block(results_dir)} | {
        f"table:{name}:{m.column}": (lambda column=m.column: metric_block(results_dir, column)) for m in METRICS}


def failed_section(failed: pd.DataFrame) -> str:
    if failed.empty:
        return "## Unsuccessful runs\n\nNone."
    columns = [c for c in FAILED_COLUMNS if c in failed]
    rows = [[_plain(value) for value in row] for row in failed[columns].itertuples(index=False)]
    note = "These runs are excluded from every table, fit and figure above."
    return f"## Unsuccessful runs ({len(failed)})\n\n{note}\n\n" + markdown_table(columns, rows)


def plots_section(figures: list[tuple[str, str]]) -> str:
    if not figures:
        return "## Figures\n\nNo figures (no usable runs)."
    parts = ["## Figures"] + [f"### {title}\n\n![{title}]({PLOTS_DIR}/{stem}.png)" for stem, title in figures]
    return "\n\n".join(parts)


def references_section(references: dict) -> str:
    """Chance, lexical and zero-shot levels of each evaluation set (bench.evaluation.references)."""
    if not references:
        return ""
    metrics = ["map_mono", "map_cross", "map_multi", "rank_distance", "ndcg10_multi", "r1_multi"]
    rows = [[name, label] + [fmt(levels[m]) if levels.get(m) is not None else "" for m in metrics]
            for name, entry in sorted(references.items()) for label, levels in entry.items() if isinstance(levels, dict)]  # fmt: skip
    intro = ("## Reference levels\n\nchance: the exact expected value of a random ranking; lexical: hashed character "
             "n-grams, nothing trained; zero-shot: the pretrained model before any training. The quality figures draw them as lines.")
    return intro + "\n\n" + markdown_table(["set", "level", *metrics], rows)


def comparison_section(runs: pd.DataFrame) -> str:
    """Each strategy against the rivals it declares, paired by seed, and its published claims one by one."""
    metrics = [m.column for m in metrics_where(kind="score", reported=True) if m.column in present_metrics(runs, [m.column])]
    diffs = paired_differences(runs, metrics)
    if not any(d.n_pairs >= 2 for d in diffs):
        return ""
    rows = [[d.strategy, f"`{d.metric}`", d.n_languages, d.other, d.n_pairs, fmt(d.mean), f"[{fmt(d.low)}, {fmt(d.high)}]",
             d.verdict()] for d in diffs]  # fmt: skip
    parts = ["## Paired comparisons",
             "Paired by seed: the strategy minus the other at the same L and seed, mean and 95% t interval over "
             "seeds (which strategies are compared is declared in the registry, `compared_with`). A difference whose "
             "interval contains 0 is reported as not resolved, whatever its sign.",
             markdown_table(["strategy", "metric", "L", "vs", "pairs", "mean difference", "95% interval", "verdict"], rows)]  # fmt: skip
    for role in EVAL_ROLES:
        multi = eval_column(role, "map_multi")
        pattern = paper_pattern(runs, role) if multi in present_metrics(runs, [multi]) else []
        if pattern:
            parts += [f"### Does the paper's pattern hold? ({role})",
                      markdown_table(["L", "claim", "verdict"], [list(row) for row in pattern])]
    return "\n\n".join(parts)


def build_report(table: pd.DataFrame, results_dir: Path, figures: list[tuple[str, str]]) -> str:
    """The report's Markdown text for a results table; `figures` are (file stem, title) pairs, linked not drawn."""
    runs, failed = usable_runs(table), failed_runs(table)
    sections = [summary_section(table, runs, failed, results_dir)]
    if len(runs):
        order = list(strategy_styles(runs["strategy"].dropna().unique()))
        sections += [metrics_section(runs), references_section(read_references(results_dir)), comparison_section(runs),
                     growth_section(runs, order), device_section(runs), prediction_check_section(runs, results_dir)]
        sections = [s for s in sections if s]
    sections += [time_section(table, read_sweeps(results_dir)), failed_section(failed), plots_section(figures)]
    sections = [s for s in sections if s]
    return "\n\n".join(sections) + "\n"


def write_report(results_dir: Path, replot: bool = False) -> Path:
    """Write RESULTS_DIR/report.md (drawing the figures first if any is missing or `replot`); return its path."""
    results_dir = Path(results_dir)
    table = load_results(results_dir)
    runs, failed = usable_runs(table), failed_runs(table)
    growth = write_growth(runs, results_dir)  # the fit files the report cites, even when no figure is redrawn
    plan = figure_plan(runs, failed, growth) if len(runs) else []
    if replot or any(not (results_dir / PLOTS_DIR / f"{stem}.png").is_file() for stem, _, _ in plan):
        drawn = {p.stem for p in plot_results(results_dir)}
        plan = [entry for entry in plan if entry[0] in drawn]
    figures = [(stem, title) for stem, title, _ in plan]
    path = results_dir / REPORT_FILE
    tmp = path.with_name(f".{REPORT_FILE}.tmp")
    tmp.write_text(build_report(table, results_dir, figures), encoding="utf-8")
    tmp.replace(path)
    return path
