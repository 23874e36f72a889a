"""Figures of a results table: cost and retrieval quality against the number of training languages.

`plot_results` (what `python -m bench.plot` and every sweep call) writes one PNG and one SVG per
figure under RESULTS_DIR/plots/ and the per-language fits to RESULTS_DIR/growth_fit.parquet and
step_cost_fit.parquet (bench.results.growth). Which metric goes into which figure is the metric
catalogue's `figure` (bench.results.schema); strategies are drawn in the registry's order, each with one
colour and marker in every figure. Repeated seeds are drawn as the median with min–max error bars; all
curve axes are linear. Cost is affine in L (cost = intercept + slope · L), so each cost curve is drawn with
its fitted line, and its legend entry gives the slope, what one more language costs, with its 95% interval
and how that interval was made: the same fits and text as the report's and the answer's tables.
Failed runs are left off the curves and counted in each footnote.
Figures are built on matplotlib's Agg canvas directly (no pyplot), so importing this module
never changes the backend of a notebook or a GUI session.
"""

from __future__ import annotations

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

from bench.core.metric_names import EVAL_ROLES, EVAL_SUMMARY_METRICS, eval_column
from bench.evaluation.references import read_references
from bench.results.fit import PREDICTED, failed_runs, present_metrics, seed_summary, usable_runs
from bench.results.devices import DEVICE_GIB, predicted_rows
from bench.results.growth import GROWTH_FILE, STEP_COST_FILE, growth_fits, step_cost_fits
from bench.results.numbers import display_unit, per_language_text
from bench.results.store import load_results, write_table_atomic
from bench.results.schema import Metric, metrics_where
from bench.strategies import strategy_names

PLOTS_DIR = "plots"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
_COMPONENT_COLOURS = ("#3b528b", "#21918c", "#5ec962", "#fde725")  # memory breakdown, bottom to top
ROLE_NAMES = {"heldout": "held-out articles", "zeroshot": "zero-shot set"}
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
          "figure.titlesize": 14, "axes.grid": True, "grid.alpha": 0.3, "svg.fonttype": "none"}  # fmt: skip
L_LABEL = "Number of training languages L"


@dataclass(frozen=True)
class CurveFigure:
    """A figure of metric-vs-L curves, one panel per catalogue metric whose `figure` is `name`; a `cost` figure
    draws each curve's fitted line (cost = intercept + slope · L) and gives its slope per added language."""

    name: str
    title: str
    cost: bool = True

    @property
    def panels(self) -> tuple[Metric, ...]:
        return metrics_where(figure=self.name)


COST_FIGURES = (
    CurveFigure("wall_time", "Wall-clock time per run"),
    CurveFigure("train_time_per_example", "Training time per example = train_s / (steps × batch size)"),
    CurveFigure("peak_tensor_memory", "Peak tensor memory at the tracked step"),
    CurveFigure("peak_rss", "Peak resident set size of the run process"),
    CurveFigure("throughput", "Training throughput"),
    CurveFigure("cost_to_target", "Cost to reach the target quality (eval.curve.target; runs that never reach it are left out)"),
)


def quality_figure(role: str) -> CurveFigure:
    """Retrieval quality on one role's evaluation set vs L (linear axes)."""
    return CurveFigure(f"quality_{role}", f"Retrieval quality ({ROLE_NAMES[role]})", cost=False)


def panel_label(metric: Metric) -> str:
    if metric.kind != "score":
        return metric.label
    return f"{metric.label} ({metric.direction} is better)"


# ---------------------------------------------------------------- colours, units, notes


def strategy_styles(strategies) -> dict[str, tuple[str, str]]:
    """(colour, marker) per strategy, in the registry's order (fixed per registered strategy, so every
    figure agrees); strategies no longer registered follow in sorted order."""
    registered = strategy_names()
    everything = list(registered) + sorted(set(strategies) - set(registered))
    styles = {s: (_PALETTE[i % len(_PALETTE)], _MARKERS[i % len(_MARKERS)]) for i, s in enumerate(everything)}
    return {s: styles[s] for s in everything if s in set(strategies)}


def _plain(value: float, _pos=None) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label (minor ones only over few decades), in plain numbers."""

    def __call__(self, x, pos=None):
        return _plain(x) if super().__call__(x, pos) else ""


FIT_NOTE = ("Dotted lines: cost = intercept + slope · L, fitted on each seed's runs (bench.results.growth, as in the "
            "report and the answer);\nlegend: the slope, what one more language costs, with its 95% interval and how "
            "it was made ('flat': the interval holds 0).")  # fmt: skip


def _fit_note(spec: CurveFigure, panels: list[Metric], runs: pd.DataFrame) -> str:
    """What a cost figure's fitted lines and legend say, or why it has none; nothing for a quality figure."""
    if not spec.cost:
        return ""
    if all(p.censored for p in panels):
        return ("No fitted line: a run that never reached the target has no value here, "
                "so a line through the runs that did would flatter the strategy.")  # fmt: skip
    if runs["n_languages"].nunique() < 2:
        return "No fitted line: a cost per added language needs at least two language counts."
    return FIT_NOTE


def _footnote(runs: pd.DataFrame, failed: pd.DataFrame, fit_note: str) -> str:
    seeds = runs.groupby(["strategy", "source", "n_languages"]).size() if len(runs) else pd.Series([0])
    lo, hi = int(seeds.min()), int(seeds.max())
    if hi <= 1:
        lines = ["One run per point (a single seed), so no error bars."]
    else:
        n_seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
        lines = [f"Line: median over seeds (n={n_seeds} per point); error bars: min–max over seeds."]
    return "\n".join(lines + ([fit_note] if fit_note else [])) + _failed_note(failed)


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


def _label(strategy: str, source: str, slope: str = "") -> str:
    text = strategy + (" (predicted)" if source == PREDICTED else "")
    return f"{text}   {slope}" if slope else text


def growth_lookup(growth: pd.DataFrame) -> dict[tuple[str, str, str], object]:
    """Growth fits (rows of `growth_fits`) by (strategy, source, metric), the keys a curve is drawn by. A curve that
    pools several vocabulary policies has no one fit, so it gets none rather than one policy's."""
    keys = ["strategy", "source", "metric"]
    single = growth[~growth.duplicated(keys, keep=False)]
    return {(r.strategy, r.source, r.metric): r for r in single.itertuples(index=False)}


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


_REFERENCE_STYLES = {"chance": (":", "#7f7f7f"), "lexical": ("--", "#000000")}  # zero-shot models: dash-dot


def reference_levels(runs: pd.DataFrame, column: str, references: dict) -> dict[str, float]:
    """{label: value} of the reference levels (chance, lexical, zero-shot) for a quality column."""
    role, metric = _quality_parts(column)
    if role is None or eval_column(role, "set") not in runs:
        return {}
    names = runs[eval_column(role, "set")].dropna().unique()
    if len(names) != 1 or names[0] not in references:
        return {}
    return {label: summary[metric] for label, summary in references[names[0]].items()
            if isinstance(summary, dict) and summary.get(metric) is not None}  # fmt: skip


def _quality_parts(column: str) -> tuple[str | None, str]:
    """(role, summary metric) of a retrieval-quality column; (None, column) for any other column."""
    for role in EVAL_ROLES:
        for metric in EVAL_SUMMARY_METRICS:
            if column == eval_column(role, metric):
                return role, metric
    return None, column


def _draw_references(ax, levels: dict[str, float], divisor: float = 1.0) -> None:
    for label, value in levels.items():
        linestyle, colour = _REFERENCE_STYLES.get(label, ("-.", "#9467bd"))
        ax.axhline(value / divisor, linestyle=linestyle, color=colour, linewidth=1.1, label=f"{label} ({value:.3g})")


def _draw_fit(ax, fit, levels: pd.Series, divisor: float, colour: str) -> None:
    """The fitted line over the curve's own L (dotted): what its legend's slope describes."""
    x = np.array([levels.min(), levels.max()], dtype=float)
    ax.plot(x, (fit.intercept + fit.slope * x) / divisor, color=colour, linestyle=":", linewidth=1.4)


def _draw_curves(ax, runs: pd.DataFrame, panel: Metric, cost: bool, fits, styles, references: dict | None = None
                 ) -> bool:  # fmt: skip
    """Median-with-range curves of one metric, one per (strategy, source); on a `cost` panel each with its fitted line
    and its slope per added language in the legend (from `fits`, a `growth_lookup`). False when nothing to draw."""
    summary = seed_summary(runs, panel.column)
    if summary.empty:
        return False
    fits = fits if cost and not panel.censored else {}
    divisor, unit = display_unit(panel.kind, float(summary["max"].max()), panel.unit)
    sloped = False
    for (strategy, source), s in by_strategy(summary, list(styles)):
        colour, marker = styles[strategy]
        fit = fits.get((strategy, source, panel.column))
        slope = per_language_text(fit, panel.kind) if fit is not None else ""
        y, lo, hi = s["median"] / divisor, s["min"] / divisor, s["max"] / divisor
        ax.errorbar(
            s["n_languages"], y, yerr=[y - lo, hi - y], color=colour, marker=marker, markersize=6, capsize=3,
            linestyle="--" if source == PREDICTED else "-", mfc="white" if source == PREDICTED else colour,
            label=_label(strategy, source, slope),
        )  # fmt: skip
        if slope:
            _draw_fit(ax, fit, s["n_languages"], divisor, colour)
            sloped = True
    _draw_references(ax, reference_levels(runs, panel.column, references or {}), divisor)
    if cost:
        ax.set_ylim(bottom=0)  # a cost's size beside its growth, as in the answer's figure
    ax.set_ylabel(f"{panel.label} ({unit})" if unit else panel.label)
    ax.set_title(panel_label(panel))
    _set_l_axis(ax, sorted(summary["n_languages"].unique()), log=False)
    rate_unit = f"{panel.unit} " if panel.kind == "rate" else ""  # bytes and seconds carry their unit in each entry
    title = f"strategy: {rate_unit}per added language" if sloped else "strategy"
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=3, title=title)
    return True


def curve_figure(spec: CurveFigure, runs, failed, fits, styles, references: dict | None = None) -> Figure | None:
    """One CurveFigure; panels whose metric is entirely null are left out; None when all are."""
    panels = [p for p in spec.panels if p.column in present_metrics(runs, [p.column])]
    if not panels:
        return None
    width = 8.4 if len(panels) == 1 else 9.6 if spec.cost else 7.2  # a cost legend's slopes need room beside each panel
    fig, axes = _new_figure(len(panels), spec.title, nrows=2 if len(panels) > 3 else 1, width=width)
    drawn = [_draw_curves(ax, runs, p, spec.cost, fits, styles, references) for ax, p in zip(axes, panels)]
    if not any(drawn):
        return None
    if len(panels) == 1:
        axes[0].set_title("")  # the figure title already says it
    plotted = runs[runs[[p.column for p in panels]].notna().any(axis=1)]
    _add_footnote(fig, _footnote(plotted, failed, _fit_note(spec, panels, plotted)))
    return fig


@dataclass(frozen=True)
class BreakdownFigure:
    """Stacked bars of a cost's components (the catalogue's metrics drawn in figure `name`), one panel per strategy."""

    name: str
    title: str
    kind: str  # the components' kind: bytes or seconds
    axis: str  # the y axis's quantity
    legend: str  # what a component is called
    note: str


BREAKDOWN_FIGURES = (
    BreakdownFigure("memory_breakdown", "Peak tensor memory by component", "bytes", "Peak tensor memory", "component",
                    "Bars: median over seeds of each component at the tracked step; numbers on top: their sum."),
    BreakdownFigure("step_breakdown", "Time per step by phase", "seconds", "Time per measured step", "phase",
                    "Bars: median over seeds of each phase's time per measured step (warm-up excluded); numbers on top: their sum."),
)  # fmt: skip


def breakdown_figure(spec: BreakdownFigure, runs, failed, styles) -> Figure | None:
    """Stacked bars of the components of one cost against L, one panel per strategy."""
    components = metrics_where(figure=spec.name)
    columns = present_metrics(runs, [m.column for m in components])
    if not columns:
        return None
    medians = runs.groupby(["strategy", "source", "n_languages"])[columns].median().reset_index()
    groups = [(s, src) for s in styles for src in ("measured", PREDICTED)
              if ((medians["strategy"] == s) & (medians["source"] == src)).any()]  # fmt: skip
    total = medians[columns].sum(axis=1, min_count=1)
    divisor, unit = display_unit(spec.kind, float(total.max()))
    fig, axes = _new_figure(len(groups), f"{spec.title} (median over seeds)", nrows=2 if len(groups) > 4 else 1, width=4.2)
    for ax in axes[1:]:
        ax.sharey(axes[0])
    for ax, (strategy, source) in zip(axes, groups):
        part = medians[(medians["strategy"] == strategy) & (medians["source"] == source)]
        positions, bottom = np.arange(len(part)), np.zeros(len(part))
        for metric, colour in zip(components, _COMPONENT_COLOURS):
            column, label = metric.column, metric.label
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
        ax.set_ylabel(f"{spec.axis} ({unit})")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title=spec.legend)
    _add_footnote(fig, spec.note + _failed_note(failed))
    return fig


def cost_quality_figure(role: str, runs, failed, styles, references: dict | None = None) -> Figure | None:
    """Quality bought per unit of time: x = training (else wall) time, y = multilingual mAP."""
    quality = eval_column(role, "map_multi")
    cost = next(iter(present_metrics(runs, ["train_s", "wall_s"])), None)
    if cost is None or quality not in present_metrics(runs, [quality]):
        return None
    data = runs.dropna(subset=[cost, quality])
    data = data[data[cost] > 0]
    if data.empty:
        return None
    name = ROLE_NAMES[role]
    fig, (ax,) = _new_figure(1, f"Cost vs quality ({name})", width=7.6)
    for strategy, group in data.groupby("strategy", sort=False):
        colour, marker = styles[strategy]
        ax.scatter(group[cost], group[quality], color=colour, marker=marker, s=22, alpha=0.45, linewidths=0)
        med = group.groupby("n_languages")[[cost, quality]].median().sort_index()
        ax.plot(med[cost], med[quality], color=colour, marker=marker, markersize=8, label=strategy)
        for n_lang, row in med.iterrows():
            ax.annotate(f"L={n_lang}", (row[cost], row[quality]), fontsize=8, color=colour,
                        xytext=(5, 4), textcoords="offset points")  # fmt: skip
    _draw_references(ax, reference_levels(runs, quality, references or {}))
    ax.set_xscale("log")
    ax.margins(x=0.08)  # room for the L=… labels at the right end
    ax.xaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
    ax.set_xlabel(f"{'Training' if cost == 'train_s' else 'Wall'} time per run (s, log scale)")
    ax.set_ylabel(f"Multilingual mAP ({name})")
    ax.set_title("Up and to the left is better: more quality for less time")
    ax.legend(title="strategy", loc="best", framealpha=0.85)
    note = "Small markers: single runs (one per seed). Large markers joined by lines: median per L, labelled L=…"
    _add_footnote(fig, note + _failed_note(failed))
    return fig


def loss_curve_figure(runs: pd.DataFrame, failed: pd.DataFrame, styles) -> Figure | None:
    """Training loss per step of the contrastive strategies, one panel per L, with chance at ln(batch size)."""
    runs = runs[(runs.get("objective") == "contrastive") & runs["loss_curve"].map(lambda c: c is not None and len(c) > 0)]
    if runs.empty:
        return None
    levels = sorted(runs["n_languages"].unique())
    fig, axes = _new_figure(len(levels), "Contrastive training loss (median over seeds)", nrows=2 if len(levels) > 3 else 1,
                            width=5.6)  # fmt: skip
    for ax, level in zip(axes, levels):
        at_level = runs[runs["n_languages"] == level]
        for strategy, group in at_level.groupby("strategy", sort=False):
            curves = np.array([np.asarray(c, dtype=float) for c in group["loss_curve"]], dtype=object)
            length = min(len(c) for c in curves)
            median = np.median(np.stack([c[:length] for c in curves]), axis=0)
            colour, _ = styles[strategy]
            ax.plot(np.arange(1, length + 1), median, color=colour, label=f"{strategy} (n={len(curves)})", linewidth=1.4)
        for batch in sorted(at_level["batch_size"].dropna().unique()):
            ax.axhline(math.log(batch), linestyle=":", color="#7f7f7f", label=f"chance: ln {int(batch)} = {math.log(batch):.3f}")
        ax.set_title(f"L = {level}")
        ax.set_xlabel("step")
        ax.set_ylabel("InfoNCE loss")
        ax.legend(fontsize=8)
    note = "Lines: median over seeds of each step's loss. A loss at ln(batch size) means the model cannot tell its positive from the negatives."
    _add_footnote(fig, note + _failed_note(failed))
    return fig


def device_figure(runs: pd.DataFrame, failed: pd.DataFrame, styles) -> Figure | None:
    """Predicted training memory (tensor peak + margin) against L, one panel per model and target device,
    with the memory of common GPUs drawn across: which strategy fits which device up to which L."""
    rows = predicted_rows(runs)
    if rows.empty:
        return None
    panel_keys = ["model", "batch_size", "mixed_precision"]
    panels = sorted(rows.groupby(panel_keys).groups)
    fig, axes = _new_figure(len(panels), "Predicted peak GPU memory in training against L (tensor peak + margin)",
                            nrows=math.ceil(len(panels) / 3), width=5.2)  # fmt: skip
    for ax, (model, batch, precision) in zip(axes, panels):
        part = rows[(rows[panel_keys] == (model, batch, precision)).all(axis=1)]
        for strategy, group in part.groupby("strategy"):
            if strategy not in styles:
                continue
            medians = group.groupby("n_languages")["total_gib"].median()
            colour, marker = styles[strategy]
            ax.plot(medians.index, medians.to_numpy(), color=colour, marker=marker, label=strategy)
        top = float(part["total_gib"].max())
        ceiling = next((gib for gib in DEVICE_GIB if gib >= top), top)  # up to the first device that holds every point
        for gib in (g for g in DEVICE_GIB if g <= ceiling):
            ax.axhline(gib, color="#888888", linestyle="--", linewidth=0.9)
            ax.annotate(f"{gib} GiB", (0.01, gib), xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="#555555")
        ax.set_ylim(0, max(ceiling, top) * 1.08)
        _set_l_axis(ax, sorted(part["n_languages"].unique()), log=True)
        ax.set_ylabel("predicted GiB")
        ax.set_title(f"{model}, batch {batch}, {'fp32' if precision == 'no' else precision}")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", title="strategy")
    note = ("Predicted on fake tensors (bench/predict.py), nothing allocated: on CPU in fp32 equal to a measured run's "
            "tensor peak to the byte;\non CUDA emulated kernels, expected error ±5%, not yet measured on a GPU. "
            "Margin: CUDA context, workspaces, 10% fragmentation.")  # fmt: skip
    _add_footnote(fig, note + _failed_note(failed))
    return fig


def _failed_note(failed: pd.DataFrame) -> str:
    if not len(failed):
        return ""
    counts = ", ".join(f"{status}: {n}" for status, n in failed["status"].value_counts().sort_index().items())
    return f"\nNot shown: {len(failed)} unsuccessful run(s) ({counts}); listed in report.md."


# ---------------------------------------------------------------- orchestration


def figure_plan(runs: pd.DataFrame, failed: pd.DataFrame, growth: pd.DataFrame,
                references: dict | None = None) -> list[tuple[str, str, Callable]]:  # fmt: skip
    """(file stem, title, builder) of every figure the table has data for, in reading order; `growth` is the
    table's `growth_fits`, drawn on the cost figures."""
    styles, lookup = strategy_styles(runs["strategy"].dropna().unique()), growth_lookup(growth)

    def has(*metrics: str) -> bool:
        return bool(present_metrics(runs, metrics))

    def curves(spec: CurveFigure) -> tuple[str, str, Callable]:
        return spec.name, spec.title, lambda: curve_figure(spec, runs, failed, lookup, styles, references)

    plan = [curves(f) for f in COST_FIGURES if has(*(p.column for p in f.panels))]
    for spec, after in zip(BREAKDOWN_FIGURES, ("peak_tensor_memory", "train_time_per_example")):
        if has(*(m.column for m in metrics_where(figure=spec.name))):
            at = next((i + 1 for i, entry in enumerate(plan) if entry[0] == after), len(plan))
            plan.insert(at, (spec.name, spec.title, lambda s=spec: breakdown_figure(s, runs, failed, styles)))
    if "loss_curve" in runs and "objective" in runs and (runs["objective"] == "contrastive").any():
        plan.append(("loss_curves", "Contrastive training loss", lambda: loss_curve_figure(runs, failed, styles)))
    for role in EVAL_ROLES:
        spec = quality_figure(role)
        if has(*(p.column for p in spec.panels)):
            plan.append(curves(spec))
        if has(eval_column(role, "map_multi")) and has("train_s", "wall_s"):
            plan.append((f"cost_quality_{role}", f"Cost vs quality ({ROLE_NAMES[role]})",
                         lambda r=role: cost_quality_figure(r, runs, failed, styles, references)))  # fmt: skip
    if not predicted_rows(runs).empty:
        plan.append(("device_fit", "Predicted memory against GPU sizes", lambda: device_figure(runs, failed, styles)))
    return plan


def write_growth(runs: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """Write the per-language slopes and the step-time fits (bench.results.growth); return the slopes."""
    growth = growth_fits(runs)
    write_table_atomic(pa.Table.from_pandas(growth, preserve_index=False), Path(results_dir) / GROWTH_FILE)
    steps = step_cost_fits(runs)
    write_table_atomic(pa.Table.from_pandas(steps, preserve_index=False), Path(results_dir) / STEP_COST_FILE)
    return growth


def plot_results(results_dir: Path) -> list[Path]:
    """Draw every supported figure of RESULTS_DIR as PNG and SVG; return the written figure paths.

    Also writes RESULTS_DIR/growth_fit.parquet and step_cost_fit.parquet. Returns [] when no run is usable (all failed).
    """
    results_dir = Path(results_dir)
    table = load_results(results_dir)
    runs, failed = usable_runs(table), failed_runs(table)
    growth = write_growth(runs, results_dir)
    if runs.empty:
        return []
    out_dir = results_dir / PLOTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for stem, _title, build in figure_plan(runs, failed, growth, read_references(results_dir)):
            fig = build()
            if fig is None:
                continue
            fig.savefig(out_dir / f"{stem}.png", dpi=150)
            fig.set_layout_engine("none")  # keep the layout the PNG just computed; halves the SVG's cost
            fig.savefig(out_dir / f"{stem}.svg")
            written += [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    return written
