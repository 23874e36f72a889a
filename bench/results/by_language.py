"""Quality along L, trained and untrained languages apart: what each arm's runs score at each L on the languages
they trained on and on those they never saw, as Markdown tables (per language) and a figure (per arm).

Values come from the per-query frames through bench.results.scope and bench.results.bootstrap, so a scope's
macro average is the number a claim with that scope tests. The figure is built on the Agg canvas (no pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results.arms import ArmRuns
from bench.results.bootstrap import CELLS, run_metric
from bench.results.claims import Claims
from bench.results.scope import RESTRICTED, in_scope
from bench.results.verdict_table import markdown_table

FIGURE_STEM = "quality_by_languages"
FIGURE_METRICS = ("map_mono", "map_cross", "map_multi")
LANGUAGE_METRICS = ("map_mono", "map_multi")  # a cell per query language (map_cross's cells are language pairs)
MACRO = ""  # `language` of a scope's macro average
COLUMNS = ["set", "arm", "n_languages", "seed", "scope", "metric", "language", "position", "value"]
_STYLE = {"font.size": 9, "axes.titlesize": 9, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
          "svg.fonttype": "none"}  # fmt: skip


def run_levels(frame: pd.DataFrame, trained: frozenset[str] | None, scope: str) -> list[dict]:
    """One run on one set, in one scope: each figure metric's macro average, and each query language's mean AP."""
    part = in_scope(frame, trained, scope)
    if not len(part):
        return []
    order = {lang: i for i, lang in enumerate(pd.unique(frame["query_lang"]))}  # the set's own language order
    rows = [{"metric": m, "language": MACRO, "position": -1, "value": run_metric(part, m)} for m in FIGURE_METRICS]
    for metric in LANGUAGE_METRICS:
        setting, value, _ = CELLS[metric]
        cells = part[part["setting"] == setting].groupby("query_lang", sort=False)[value].mean()
        rows += [{"metric": metric, "language": lang, "position": order[lang], "value": float(mean)}
                 for lang, mean in cells.items()]  # fmt: skip
    return rows


def language_levels(claims: Claims, arms: Mapping[str, ArmRuns]) -> pd.DataFrame:
    """Every run's values (run_levels) at every L of the claims file, per set, arm, seed and scope (COLUMNS)."""
    rows = []
    for set_name in claims.sets:
        for label, runs in arms.items():
            for n in claims.languages:
                on_set = runs.at(n).on_set(set_name)
                for seed, frame, trained in zip(on_set.seeds, on_set.frames, on_set.trained):
                    for scope in RESTRICTED:
                        keys = {"set": set_name, "arm": label, "n_languages": n, "seed": seed, "scope": scope}
                        rows += [keys | row for row in run_levels(frame, trained, scope)]
    return pd.DataFrame(rows, columns=COLUMNS)


def over_seeds(levels: pd.DataFrame) -> pd.DataFrame:
    """Mean, min, max and count over seeds of every (set, arm, L, scope, metric, language)."""
    keys = ["set", "arm", "n_languages", "scope", "metric", "language", "position"]
    return levels.groupby(keys, sort=False)["value"].agg(["mean", "min", "max", "count"]).reset_index()


def language_table(summary: pd.DataFrame, claims: Claims, set_name: str, metric: str) -> str | None:
    """One set's metric: a row per (arm, L, scope) with the scope's macro average and each of its languages."""
    part = summary[(summary["set"] == set_name) & (summary["metric"] == metric)]
    if part.empty:
        return None
    languages = list(part[part["language"] != MACRO].sort_values("position")["language"].drop_duplicates())
    rows = []
    for arm in claims.arms:
        for n in claims.languages:
            for scope in RESTRICTED:
                cells = part[(part["arm"] == arm) & (part["n_languages"] == n) & (part["scope"] == scope)]
                if cells.empty:
                    continue
                mean = dict(zip(cells["language"], cells["mean"]))
                rows.append([arm, n, scope, int(cells["count"].max()), f"{mean[MACRO]:.4f}",
                             *[f"{mean[lang]:.3f}" if lang in mean else "" for lang in languages]])  # fmt: skip
    return markdown_table(["arm", "L", "languages", "seeds", "macro", *languages], rows)


def language_section(levels: pd.DataFrame, claims: Claims) -> list[str]:
    """verdict.md's per-language section: per set and metric, trained and untrained languages in rows apart."""
    summary = over_seeds(levels)
    lines = ["## By language: trained and untrained", "",
             "Mean over seeds of each run's mean average precision per query language, at each L: a `trained` row "
             "shows the languages the runs trained on, an `untrained` row the others (none at the largest L). "
             "macro: the average over the row's languages, the value a claim scoped to them tests.", ""]  # fmt: skip
    for set_name, display in claims.sets.items():
        for metric in LANGUAGE_METRICS:
            table = language_table(summary, claims, set_name, metric)
            lines += [f"### {display}: {metric}", "", table or "No runs yet.", ""]
    return lines


def draw_panel(ax, summary: pd.DataFrame, claims: Claims) -> None:
    """One (set, scope, metric): each arm's macro average against L, mean over seeds with min–max bars."""
    drawn = False
    for arm in claims.arms:
        points = summary[(summary["arm"] == arm) & (summary["language"] == MACRO)].dropna(subset=["mean"])
        points = points.sort_values("n_languages")
        if points.empty:
            continue
        x, y = points["n_languages"].to_numpy(), points["mean"].to_numpy()
        yerr = [y - points["min"].to_numpy(), points["max"].to_numpy() - y]
        ax.errorbar(x, y, yerr=yerr, fmt="o-", capsize=3, ms=4, label=arm)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
    ax.set_xticks(list(claims.languages))


def plot_by_languages(levels: pd.DataFrame, claims: Claims, out_dir: Path) -> list[Path]:
    """Draw quality_by_languages.png and .svg under out_dir: rows are metrics, columns (set, trained / untrained)."""
    summary = over_seeds(levels)
    columns = [(set_name, scope) for set_name in claims.sets for scope in RESTRICTED]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(3.4 * len(columns), 2.8 * len(FIGURE_METRICS)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(FIGURE_METRICS), len(columns), squeeze=False)
        for row, metric in enumerate(FIGURE_METRICS):
            for col, (set_name, scope) in enumerate(columns):
                ax = axes[row][col]
                chosen = (summary["set"] == set_name) & (summary["scope"] == scope) & (summary["metric"] == metric)
                draw_panel(ax, summary[chosen], claims)
                ax.set_title(f"{claims.sets[set_name]}: {scope} languages")
                ax.set_xlabel("training languages L")
                ax.set_ylabel(metric)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside upper right", ncols=len(labels))
        fig.suptitle(f"{claims.experiment}: quality against L, trained and untrained languages apart")
        fig.supxlabel("points: mean over seeds of each run's macro average over the scope's languages; error bars: "
                      "min–max over seeds; no untrained point where the runs trained on every language",
                      fontsize=8)  # fmt: skip
        paths = [out_dir / f"{FIGURE_STEM}.png", out_dir / f"{FIGURE_STEM}.svg"]
        fig.savefig(paths[0], dpi=120)
        fig.set_layout_engine("none")  # keep the layout the PNG computed
        fig.savefig(paths[1])
    return paths
