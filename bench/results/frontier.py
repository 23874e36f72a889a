"""The alpha frontier: what each arm trades between monolingual and multilingual retrieval, per set.

One panel per evaluation set, side by side: x = map_multi, y = map_mono, one point per arm at the
mean over its seeds, with min–max error bars over the seeds; the arms of alpha_of_arm are joined in
alpha order, so the line is the frontier hybrid training traces from cross-lingual (alpha 0) to
monolingual (alpha 1). Zero-shot and lexical reference levels, when given, are drawn as labelled
markers. Run-level metrics come from the per-query frames through bench.results.bootstrap, so they are
the numbers the harness reports and the verdicts test. Built on the Agg canvas (no pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results.bootstrap import run_metric
from bench.results.arms import ArmRuns
from bench.results.claims import Claims, load_arms

FIGURE_STEM = "alpha_frontier"
AXES = ("map_multi", "map_mono")  # x, y
_STYLE = {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
          "svg.fonttype": "none"}  # fmt: skip
_REFERENCE_MARKERS = {"zero-shot": ("*", "#000000"), "lexical": ("X", "#777777")}


def arm_points(runs: ArmRuns, set_name: str) -> dict[str, np.ndarray] | None:
    """Per axis metric, the arm's runs' values on the set (None if it has no run on it)."""
    on_set = runs.on_set(set_name)
    if not on_set.seeds:
        return None
    return {metric: np.array([run_metric(frame, metric) for frame in on_set.frames]) for metric in AXES}


def reference_points(levels: Mapping) -> list[tuple[str, str, float, float]]:
    """(label, kind, map_multi, map_mono) of each zero-shot or lexical level of one set."""
    out = []
    for label, values in levels.items():
        kind = next((k for k in _REFERENCE_MARKERS if label.startswith(k)), None)
        if kind and isinstance(values, Mapping) and all(values.get(m) is not None for m in AXES):
            out.append((label, kind, float(values["map_multi"]), float(values["map_mono"])))
    return out


def draw_panel(ax, claims: Claims, arms: Mapping[str, ArmRuns], set_name: str, levels: Mapping) -> None:
    """One set's frontier: arm means with min–max bars, the alpha arms joined, references marked."""
    points = {label: arm_points(runs, set_name) for label, runs in arms.items()}
    points = {label: p for label, p in points.items() if p is not None}
    for label, p in points.items():
        x, y = p["map_multi"], p["map_mono"]
        xerr = [[x.mean() - x.min()], [x.max() - x.mean()]]
        yerr = [[y.mean() - y.min()], [y.max() - y.mean()]]
        drawn = ax.errorbar(x.mean(), y.mean(), xerr=xerr, yerr=yerr, fmt="o", capsize=3, ms=5)
        ax.annotate(f"{label} (n={len(x)})", (x.mean(), y.mean()), textcoords="offset points", xytext=(5, 5),
                    fontsize=8, color=drawn.lines[0].get_color())  # fmt: skip
    along = sorted((a, label) for label, a in claims.alpha_of_arm.items() if label in points)
    if len(along) > 1:
        x, y = ([points[label][metric].mean() for _, label in along] for metric in AXES)
        ax.plot(x, y, "-", color="#1f77b4", alpha=0.6, zorder=0)
    for label, kind, x, y in reference_points(levels):
        marker, colour = _REFERENCE_MARKERS[kind]
        ax.plot(x, y, marker, color=colour, ms=9)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, -10), fontsize=8, color=colour)
    if not points:
        ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(claims.sets[set_name])
    ax.set_xlabel("multilingual mAP (map_multi)")
    ax.set_ylabel("monolingual mAP (map_mono)")


def plot_frontier(
    results_dir: Path,
    claims: Claims,
    out_dir: Path,
    references: Mapping | None = None,
    arms: Mapping[str, ArmRuns] | None = None,
) -> list[Path]:
    """Draw alpha_frontier.png and .svg under out_dir; `references` is references.json's shape, `arms`
    the already loaded runs (read from results_dir when None)."""
    arms = load_arms(claims, results_dir) if arms is None else arms
    references = references or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.2 * len(claims.sets), 4.8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(claims.sets), squeeze=False)[0]
        for ax, set_name in zip(axes, claims.sets):
            draw_panel(ax, claims, arms, set_name, references.get(set_name) or {})
        fig.suptitle(f"{claims.experiment}: the alpha frontier")
        fig.supxlabel("points: mean over seeds (n = seeds); error bars: min–max over seeds; line: the arms of "
                      "alpha_of_arm in alpha order", fontsize=8)  # fmt: skip
        paths = [out_dir / f"{FIGURE_STEM}.png", out_dir / f"{FIGURE_STEM}.svg"]
        fig.savefig(paths[0], dpi=150)
        fig.set_layout_engine("none")  # keep the layout the PNG computed
        fig.savefig(paths[1])
    return paths
