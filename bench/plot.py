"""Scaling curves: cost and retrieval quality against the number of training languages.

    python -m bench.plot RESULTS_DIR

Reads RESULTS_DIR/results.parquet, writes one PNG and one SVG per figure under
RESULTS_DIR/plots/ and the power-law fits to RESULTS_DIR/scaling_fit.parquet. Every sweep
calls `plot_results` at its end. Each strategy keeps one colour and marker in every figure.
Repeated seeds are drawn as the median with min–max error bars; cost axes are log-log (growth
is multiplicative) and each cost curve's legend entry carries its fitted exponent k ± stderr;
quality axes are linear. Failed runs are left off the curves and counted in each footnote.
Figures are built on matplotlib's Agg canvas directly (no pyplot), so importing this module
never changes the backend of a notebook or a GUI session.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, NullLocator

from bench.errors import exit_on_user_error
from bench.fit import (
    PREDICTED, PowerLawFit, failed_runs, fit_lookup, present_metrics, scaling_fits, seed_summary, usable_runs,
)  # fmt: skip
from bench.results_io import load_results, write_table_atomic
from bench.schema import EVAL_DATASETS

PLOTS_DIR = "plots"
FIT_FILE = "scaling_fit.parquet"
STRATEGY_ORDER = ("monolingual", "crosslingual", "hybrid", "mbert")
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
_COMPONENTS = (  # (column, legend label, colour) of the memory breakdown, bottom to top
    ("peak_param_bytes", "parameters", "#3b528b"),
    ("peak_grad_bytes", "gradients", "#21918c"),
    ("peak_optimizer_bytes", "optimizer state", "#5ec962"),
    ("peak_activation_bytes", "activations", "#fde725"),
)
DATASET_NAMES = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}
_STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
          "figure.titlesize": 14, "axes.grid": True, "grid.alpha": 0.3, "svg.fonttype": "none"}  # fmt: skip
L_LABEL = "Number of training languages L"


@dataclass(frozen=True)
class Panel:
    """One axes of a curve figure: which column, how to call it, which unit family it is in."""

    metric: str
    label: str
    kind: str  # "seconds", "bytes", "rate" or "score"
    unit: str = ""  # shown as given for "rate"; derived from the data for "seconds" and "bytes"


@dataclass(frozen=True)
class CurveFigure:
    """A figure of metric-vs-L curves, one panel per metric; `log` means log-log axes with fitted k."""

    name: str
    title: str
    panels: tuple[Panel, ...]
    log: bool = True


COST_FIGURES = (
    CurveFigure("wall_time", "Wall-clock time per run", (Panel("wall_s", "Wall time", "seconds"),)),
    CurveFigure(
        "train_time_per_example",
        "Training time per example = train_s / (steps × batch size)",
        (Panel("train_s_per_example", "Training time per example", "seconds"),),
    ),
    CurveFigure("peak_tensor_memory", "Peak tensor memory at the tracked step",
                (Panel("peak_tensor_bytes", "Peak tensor memory", "bytes"),)),  # fmt: skip
    CurveFigure("peak_rss", "Peak resident set size of the run process",
                (Panel("peak_rss_bytes", "Peak RSS", "bytes"),)),  # fmt: skip
    CurveFigure(
        "throughput",
        "Training throughput",
        (Panel("samples_per_s", "Throughput", "rate", "samples/s"),
         Panel("tokens_per_s", "Throughput incl. padding", "rate", "tokens/s")),
    ),  # fmt: skip
)


def quality_figure(dataset: str) -> CurveFigure:
    """Retrieval quality on one evaluation dataset vs L (linear axes)."""
    name = DATASET_NAMES.get(dataset, dataset)
    return CurveFigure(
        f"quality_{dataset}",
        f"Retrieval quality on {name}",
        (Panel(f"eval_{dataset}_map_multi", "Multilingual mAP (higher is better)", "score"),
         Panel(f"eval_{dataset}_rank_distance", "Max rank distance (lower is better: less language bias)", "score")),
        log=False,
    )  # fmt: skip


# ---------------------------------------------------------------- colours, units, notes


def strategy_styles(strategies) -> dict[str, tuple[str, str]]:
    """(colour, marker) per strategy: the four known ones fixed, others after them in sorted order."""
    known = [s for s in STRATEGY_ORDER if s in set(strategies)]
    ordered = known + sorted(set(strategies) - set(STRATEGY_ORDER))
    styles = {s: (_PALETTE[i], _MARKERS[i]) for i, s in enumerate(STRATEGY_ORDER)}
    extra = [s for s in ordered if s not in styles]
    for i, s in enumerate(extra, start=len(STRATEGY_ORDER)):
        styles[s] = (_PALETTE[i % len(_PALETTE)], _MARKERS[i % len(_MARKERS)])
    return {s: styles[s] for s in ordered}


def display_unit(kind: str, max_value: float, unit: str = "") -> tuple[float, str]:
    """(divisor, unit) that keeps axis numbers readable: MiB/GiB for bytes, s/ms for seconds."""
    if kind == "bytes":
        return (2**30, "GiB") if max_value >= 2**30 else (2**20, "MiB")
    if kind == "seconds":
        return (1.0, "s") if max_value >= 1 else (1e-3, "ms")
    return 1.0, unit


def _plain(value: float, _pos=None) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label (minor ones only over few decades), in plain numbers."""

    def __call__(self, x, pos=None):
        return _plain(x) if super().__call__(x, pos) else ""


def _footnote(runs: pd.DataFrame, failed: pd.DataFrame, log: bool) -> str:
    seeds = runs.groupby(["strategy", "source", "n_languages"]).size() if len(runs) else pd.Series([0])
    lo, hi = int(seeds.min()), int(seeds.max())
    if hi <= 1:
        lines = ["One run per point (a single seed), so no error bars."]
    else:
        n_seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
        lines = [f"Line: median over seeds (n={n_seeds} per point); error bars: min–max over seeds."]
    if log and runs["n_languages"].nunique() < 2:
        lines.append("No exponent k: a power law needs at least two language counts.")
    elif log:
        lines.append("k: least-squares exponent of cost ∝ L^k over all runs (every seed), ± its standard error.")
    return "\n".join(lines) + _failed_note(failed)


def _new_figure(n_panels: int, title: str, nrows: int = 1, width: float = 6.4) -> tuple[Figure, list]:
    ncols = math.ceil(n_panels / nrows)
    fig = Figure(figsize=(width * ncols, 4.6 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:n_panels]


def _add_footnote(fig: Figure, text: str) -> None:
    lines = text.count("\n") + 1
    fig.get_layout_engine().set(rect=(0, 0.035 * lines + 0.02, 1, 1 - 0.035 * lines - 0.02))
    fig.text(0.01, 0.01, text, fontsize=8.5, color="#444444", va="bottom", ha="left")


def by_strategy(summary: pd.DataFrame, order: list[str]) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Groups of a seed summary per (strategy, source), in plotting order: known strategies first, measured first."""
    groups = summary.groupby(["strategy", "source"])
    return sorted(groups, key=lambda item: (order.index(item[0][0]), item[0][1]))


def _label(strategy: str, source: str, fit: PowerLawFit | None = None) -> str:
    text = strategy + (" (predicted)" if source == PREDICTED else "")
    return f"{text}   {fit.label()}" if fit is not None and fit.label() else text


def _set_l_axis(ax, levels, log: bool) -> None:
    if log:
        ax.set_xscale("log")
    ax.set_xticks(levels)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(levels) == 1:
        ax.set_xlim(levels[0] / 1.5, levels[0] * 1.5) if log else ax.set_xlim(levels[0] - 1, levels[0] + 1)
    ax.set_xlabel(L_LABEL)


# ---------------------------------------------------------------- figures


def _draw_curves(ax, runs: pd.DataFrame, panel: Panel, log: bool, fits, styles) -> bool:
    """Median-with-range curves of one metric, one per (strategy, source); False when nothing to draw."""
    summary = seed_summary(runs, panel.metric)
    if log:
        summary = summary[(summary["median"] > 0) & (summary["min"] > 0)]
    if summary.empty:
        return False
    divisor, unit = display_unit(panel.kind, float(summary["max"].max()), panel.unit)
    for (strategy, source), s in by_strategy(summary, list(styles)):
        colour, marker = styles[strategy]
        y, lo, hi = s["median"] / divisor, s["min"] / divisor, s["max"] / divisor
        ax.errorbar(
            s["n_languages"], y, yerr=[y - lo, hi - y], color=colour, marker=marker, markersize=6, capsize=3,
            linestyle="--" if source == PREDICTED else "-", mfc="white" if source == PREDICTED else colour,
            label=_label(strategy, source, fits.get((strategy, source, panel.metric)) if log else None),
        )  # fmt: skip
    if log:
        ax.set_yscale("log")
        # Plain numbers, and minor ticks labelled (2, 5, ...) only when the axis spans few decades.
        ax.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
    ax.set_ylabel(f"{panel.label} ({unit})" if unit else panel.label)
    ax.set_title(panel.label)
    _set_l_axis(ax, sorted(summary["n_languages"].unique()), log)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=3, title="strategy")
    return True


def curve_figure(spec: CurveFigure, runs, failed, fits, styles) -> Figure | None:
    """One CurveFigure; panels whose metric is entirely null are left out; None when all are."""
    panels = [p for p in spec.panels if p.metric in present_metrics(runs, [p.metric])]
    if not panels:
        return None
    axes_note = " (log-log axes)" if spec.log else " (linear axes)"
    fig, axes = _new_figure(len(panels), spec.title + axes_note, width=8.4 if len(panels) == 1 else 7.2)
    drawn = [_draw_curves(ax, runs, p, spec.log, fits, styles) for ax, p in zip(axes, panels)]
    if not any(drawn):
        return None
    if len(panels) == 1:
        axes[0].set_title("")  # the figure title already says it
    plotted = runs[runs[[p.metric for p in panels]].notna().any(axis=1)]
    _add_footnote(fig, _footnote(plotted, failed, spec.log))
    return fig


def memory_breakdown_figure(runs, failed, styles) -> Figure | None:
    """Stacked bars of params / grads / optimizer / activations at the peak, one panel per strategy."""
    columns = present_metrics(runs, [c for c, _, _ in _COMPONENTS])
    if not columns:
        return None
    medians = runs.groupby(["strategy", "source", "n_languages"])[columns].median().reset_index()
    groups = [(s, src) for s in styles for src in ("measured", PREDICTED)
              if ((medians["strategy"] == s) & (medians["source"] == src)).any()]  # fmt: skip
    total = medians[columns].sum(axis=1, min_count=1)
    divisor, unit = display_unit("bytes", float(total.max()))
    fig, axes = _new_figure(len(groups), "Peak tensor memory by component (median over seeds)",
                            nrows=2 if len(groups) > 4 else 1, width=4.2)  # fmt: skip
    for ax in axes[1:]:
        ax.sharey(axes[0])
    for ax, (strategy, source) in zip(axes, groups):
        part = medians[(medians["strategy"] == strategy) & (medians["source"] == source)]
        positions, bottom = np.arange(len(part)), np.zeros(len(part))
        for column, label, colour in _COMPONENTS:
            if column in columns:
                values = part[column].fillna(0).to_numpy() / divisor
                ax.bar(positions, values, bottom=bottom, color=colour, label=label, edgecolor="white", width=0.7)
                bottom += values
        for x, top in zip(positions, bottom):
            digits = 0 if top >= 100 else 1 if top >= 10 else 2
            ax.annotate(f"{top:.{digits}f}", (x, top), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(positions, [str(v) for v in part["n_languages"]])
        centre, half = (len(part) - 1) / 2, max(len(part), 2) / 2
        ax.set_xlim(centre - half, centre + half)  # a lone bar should not fill the panel
        ax.set_title(_label(strategy, source), color=styles[strategy][0], fontweight="bold")
        ax.set_xlabel("L (training languages)")
        ax.grid(axis="x", visible=False)
    for ax in axes[:: math.ceil(len(groups) / (2 if len(groups) > 4 else 1))]:
        ax.set_ylabel(f"Peak tensor memory ({unit})")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="component")
    note = "Bars: median over seeds of each component at the tracked step; numbers on top: their sum."
    _add_footnote(fig, note + _failed_note(failed))
    return fig


def cost_quality_figure(dataset: str, runs, failed, styles) -> Figure | None:
    """Quality bought per unit of time: x = training (else wall) time, y = multilingual mAP."""
    quality = f"eval_{dataset}_map_multi"
    cost = next(iter(present_metrics(runs, ["train_s", "wall_s"])), None)
    if cost is None or quality not in present_metrics(runs, [quality]):
        return None
    data = runs.dropna(subset=[cost, quality])
    data = data[data[cost] > 0]
    if data.empty:
        return None
    name = DATASET_NAMES.get(dataset, dataset)
    fig, (ax,) = _new_figure(1, f"Cost vs quality on {name}", width=7.6)
    for strategy, group in data.groupby("strategy", sort=False):
        colour, marker = styles[strategy]
        ax.scatter(group[cost], group[quality], color=colour, marker=marker, s=22, alpha=0.45, linewidths=0)
        med = group.groupby("n_languages")[[cost, quality]].median().sort_index()
        ax.plot(med[cost], med[quality], color=colour, marker=marker, markersize=8, label=strategy)
        for n_lang, row in med.iterrows():
            ax.annotate(f"L={n_lang}", (row[cost], row[quality]), fontsize=8, color=colour,
                        xytext=(5, 4), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.08)  # room for the L=… labels at the right end
    ax.xaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
    ax.set_xlabel(f"{'Training' if cost == 'train_s' else 'Wall'} time per run (s, log scale)")
    ax.set_ylabel(f"Multilingual mAP on {name}")
    ax.set_title("Up and to the left is better: more quality for less time")
    ax.legend(title="strategy", loc="best", framealpha=0.85)
    note = "Small markers: single runs (one per seed). Large markers joined by lines: median per L, labelled L=…"
    _add_footnote(fig, note + _failed_note(failed))
    return fig


def _failed_note(failed: pd.DataFrame) -> str:
    if not len(failed):
        return ""
    counts = ", ".join(f"{status}: {n}" for status, n in failed["status"].value_counts().sort_index().items())
    return f"\nNot shown: {len(failed)} unsuccessful run(s) ({counts}); listed in report.md."


# ---------------------------------------------------------------- orchestration


def figure_plan(runs: pd.DataFrame, failed: pd.DataFrame, fits: pd.DataFrame) -> list[tuple[str, str, Callable]]:
    """(file stem, title, builder) of every figure the table has data for, in reading order."""
    styles, lookup = strategy_styles(runs["strategy"].dropna().unique()), fit_lookup(fits)

    def has(*metrics: str) -> bool:
        return bool(present_metrics(runs, metrics))

    def curves(spec: CurveFigure) -> tuple[str, str, Callable]:
        return spec.name, spec.title, lambda: curve_figure(spec, runs, failed, lookup, styles)

    plan = [curves(f) for f in COST_FIGURES if has(*(p.metric for p in f.panels))]
    if has(*(c for c, _, _ in _COMPONENTS)):
        at = next((i + 1 for i, entry in enumerate(plan) if entry[0] == "peak_tensor_memory"), len(plan))
        plan.insert(at, ("memory_breakdown", "Peak tensor memory by component",
                         lambda: memory_breakdown_figure(runs, failed, styles)))  # fmt: skip
    for dataset in EVAL_DATASETS:
        spec, name = quality_figure(dataset), DATASET_NAMES.get(dataset, dataset)
        if has(*(p.metric for p in spec.panels)):
            plan.append(curves(spec))
        if has(f"eval_{dataset}_map_multi") and has("train_s", "wall_s"):
            plan.append((f"cost_quality_{dataset}", f"Cost vs quality on {name}",
                         lambda d=dataset: cost_quality_figure(d, runs, failed, styles)))  # fmt: skip
    return plan


def write_fits(fits: pd.DataFrame, results_dir: Path) -> Path:
    path = Path(results_dir) / FIT_FILE
    write_table_atomic(pa.Table.from_pandas(fits, preserve_index=False), path)
    return path


def plot_results(results_dir: Path) -> list[Path]:
    """Draw every supported figure of RESULTS_DIR as PNG and SVG; return the written figure paths.

    Also writes RESULTS_DIR/scaling_fit.parquet. Returns [] when no run is usable (all failed).
    """
    results_dir = Path(results_dir)
    table = load_results(results_dir)
    runs, failed = usable_runs(table), failed_runs(table)
    fits = scaling_fits(runs)
    write_fits(fits, results_dir)
    if runs.empty:
        return []
    out_dir = results_dir / PLOTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with matplotlib.rc_context(_STYLE):
        for stem, _title, build in figure_plan(runs, failed, fits):
            fig = build()
            if fig is None:
                continue
            fig.savefig(out_dir / f"{stem}.png", dpi=150)
            fig.set_layout_engine("none")  # keep the layout the PNG just computed; halves the SVG's cost
            fig.savefig(out_dir / f"{stem}.svg")
            written += [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    return written


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="directory holding results.parquet")
    args = parser.parse_args(argv)
    paths = plot_results(args.results_dir)
    if not paths:
        print(f"no usable runs in {args.results_dir}; wrote only {FIT_FILE}")
    else:
        print(f"wrote {len(paths) // 2} figures (PNG + SVG) to {args.results_dir / PLOTS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
