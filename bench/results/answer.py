"""The project's answer on one screen: how cost grows with L per strategy, fixed against growing vocabulary,
measured where a CPU can and predicted to 104 languages where it cannot.

Two results directories feed it: a measured scaling sweep (every strategy x L x vocabulary policy x seeds;
`+experiment=scaling`) and a predicted one (GPU-sized models to 104 synthetic languages;
`+experiment=predict-104`). One figure (time per step and peak tensor memory against L, measured; predicted
GPU memory against L, with its worst case, and real cards' usable memory across) and one table per strategy (what
an added language costs under each vocabulary policy; the predicted GiB at the largest L, its worst case, and the
verdict of each headline card of conf/devices.yaml, read with the prediction's error band: bench.results.devices).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results.devices import CARDS, HEADLINE, card_cell, card_lines, device_fit, predicted_rows
from bench.results.figures import L_LABEL, STYLE, display_unit, strategy_styles
from bench.results.fit import MEASURED, usable_runs
from bench.results.growth import CRITERIA, growth_fits, step_cost_fits
from bench.results.markdown import distinct, markdown_table, precision_label, seeds_per_point, slope_text
from bench.results.store import load_results

ANSWER_FIGURE = "answer"
POLICY_LINES = {"shared-all": "-", "selected-scaled": "--"}  # fixed vocabulary solid, growing dashed
POLICY_NAMES = {"shared-all": "fixed vocabulary", "selected-scaled": "growing vocabulary"}
MEASURED_PANELS = (("step_time_p50_s", "seconds", "Median time per step"), ("peak_tensor_bytes", "bytes", "Peak tensor memory"))


def measured_runs(results_dir: Path) -> pd.DataFrame:
    runs = usable_runs(load_results(results_dir))
    return runs[runs["source"] == MEASURED]


def predicted_model(predicted: pd.DataFrame) -> tuple[str, int, str] | None:
    """The (model, batch size, precision) the figure and table show: the model with the largest embedding table at
    its largest L (a real table beats a counterfactual that grows towards it), ties to the last name in order
    (rows without vocab_size: the last name); its largest batch."""
    if predicted.empty:
        return None
    top = predicted[predicted["n_languages"] == predicted["n_languages"].max()]
    tables = top.groupby("model")["vocab_size"].max() if "vocab_size" in top else pd.Series(0, index=top["model"].unique())
    model = max(tables.index, key=lambda name: (tables[name], name))
    rows = predicted[predicted["model"] == model]
    batch = int(rows["batch_size"].max())
    return model, batch, str(rows[rows["batch_size"] == batch]["mixed_precision"].iloc[0])


def answer_figure(measured: pd.DataFrame, predicted: pd.DataFrame) -> Figure:
    """Time per step and tensor memory against L (measured, both vocabulary policies) and predicted GPU memory."""
    styles = strategy_styles(sorted(set(measured["strategy"]) | set(predicted.get("strategy", pd.Series(dtype=str)))))
    shown = predicted_model(predicted)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.0 * (2 + (shown is not None)), 5.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 + (shown is not None), squeeze=False).ravel()
        for ax, (column, kind, title) in zip(axes, MEASURED_PANELS):
            _measured_panel(ax, measured, column, kind, title, styles)
        if shown is not None:
            _predicted_panel(axes[2], predicted, shown, styles)
        handles = [matplotlib.lines.Line2D([], [], color=colour, marker=marker, label=s) for s, (colour, marker) in styles.items()]
        handles += [matplotlib.lines.Line2D([], [], color="#444444", linestyle=line, label=POLICY_NAMES[p]) for p, line in POLICY_LINES.items()]
        fig.legend(handles=handles, loc="outside right upper")
        fig.suptitle("How cost grows with the number of training languages")
    return fig


def _measured_panel(ax, measured: pd.DataFrame, column: str, kind: str, title: str, styles) -> None:
    values = measured.dropna(subset=[column])
    divisor, unit = display_unit(kind, float(values[column].max()) if len(values) else 1.0)
    for (strategy, policy), group in values.groupby(["strategy", "tokenizer_policy"]):
        stats = group.groupby("n_languages")[column].agg(["median", "min", "max"]) / divisor
        colour, marker = styles[strategy]
        ax.errorbar(stats.index, stats["median"], yerr=[stats["median"] - stats["min"], stats["max"] - stats["median"]],
                    color=colour, marker=marker, linestyle=POLICY_LINES.get(policy, ":"), capsize=3)  # fmt: skip
    levels = sorted(values["n_languages"].unique())
    ax.set_xticks(levels)
    ax.set_xlabel(L_LABEL)
    ax.set_ylabel(f"{title} ({unit})")
    ax.set_ylim(bottom=0)
    models = distinct(values, "model")
    ax.set_title(f"{title}, measured ({models} model)")


def _predicted_panel(ax, predicted: pd.DataFrame, shown: tuple[str, int, str], styles) -> None:
    model, batch, precision = shown
    rows = predicted[(predicted["model"] == model) & (predicted["batch_size"] == batch) & (predicted["mixed_precision"] == precision)]
    for strategy, group in rows.groupby("strategy"):
        colour, marker = styles[strategy]
        for column, line in (("total_gib", "--"), ("worst_total_gib", ":")):  # the plan's maximum; its worst case
            medians = group.groupby("n_languages")[column].median().dropna()
            ax.plot(medians.index, medians.to_numpy(), color=colour, marker=marker if line == "--" else None,
                    linestyle=line)  # fmt: skip
    top = float(rows[["total_gib", "worst_total_gib"]].max().max())
    lines = card_lines(CARDS)
    ceiling = next((gib for gib, _ in lines if gib >= top), top)
    for gib, names in (line for line in lines if line[0] <= ceiling):
        ax.axhline(gib, color="#888888", linewidth=0.9, linestyle="-", alpha=0.5)
        ax.annotate(f"{names}: {gib} GiB usable", (0.01, gib), xycoords=("axes fraction", "data"), va="bottom",
                    fontsize=7, color="#555555")  # fmt: skip
    ax.set_xscale("log")
    levels = sorted(rows["n_languages"].unique())
    ax.set_xticks(levels, [str(v) for v in levels])
    ax.minorticks_off()
    ax.set_ylim(0, max(ceiling, top) * 1.08)
    ax.set_xlabel(L_LABEL + " (synthetic past 11)")
    ax.set_ylabel("Predicted GPU memory (GiB; dotted: worst case)")
    label = precision_label(precision)
    ax.set_title(f"Predicted: {model}, batch {batch}, {label}")


QUALITY_COLUMNS = ("eval_heldout_map_multi", "eval_zeroshot_map_multi")  # what a strategy buys: multilingual mAP


def quality_precision(quality: pd.DataFrame) -> str:
    """The precision most of the quality experiment's runs trained in (its arms; others are parity checks)."""
    return str(quality["mixed_precision"].mode().iloc[0])


def quality_cells(measured: pd.DataFrame, quality: pd.DataFrame) -> dict[str, str]:
    """Per strategy, the mean multilingual mAP of the quality experiment's runs in its arms' precision with
    the measured sweep's `alpha` (a hybrid at another alpha is another arm), held-out and zero-shot, and n."""
    if quality.empty:
        return {}
    quality = quality[quality["mixed_precision"] == quality_precision(quality)]
    cells = {}
    for strategy, rows in measured.groupby("strategy"):
        alpha = rows["alpha"].iloc[0] if "alpha" in rows else None
        arm = quality[quality["strategy"] == strategy]
        arm = arm[arm["alpha"].isna()] if pd.isna(alpha) else arm[arm["alpha"] == alpha]
        if len(arm):
            means = " / ".join(f"{arm[c].mean():.3f}" for c in QUALITY_COLUMNS)
            cells[strategy] = f"{means} (n={len(arm)})"
    return cells


def answer_table(measured: pd.DataFrame, predicted: pd.DataFrame, quality: pd.DataFrame | None = None) -> str:
    """One row per strategy: what an added language costs (time per step, tensor memory) under each vocabulary
    policy, the predicted GPU memory at the largest L and its worst case, each headline card's verdict on them
    (conf/devices.yaml), and what the strategy buys (multilingual mAP in the quality experiment, where it has the
    strategy as an arm)."""
    growth = growth_fits(measured, ["step_time_p50_s", "peak_tensor_bytes"])
    cells = {(r.strategy, r.tokenizer_policy, r.metric): slope_text(r.slope, r.slope_ci_low, r.slope_ci_high, r.shape,
                                                                    "seconds" if r.metric.endswith("_s") else "bytes")
             for r in growth.itertuples(index=False)}  # fmt: skip
    shown = predicted_model(predicted)
    fits = device_fit(predicted) if shown is not None else pd.DataFrame()
    if shown is not None:
        fits = fits[(fits["model"] == shown[0]) & (fits["batch_size"] == shown[1]) & (fits["mixed_precision"] == shown[2])]
    by_strategy = fits.set_index("strategy") if len(fits) else pd.DataFrame()
    header = ["strategy"] + [f"time per step per added language, {POLICY_NAMES[p]}" for p in POLICY_LINES] + [
        f"tensor memory per added language, {POLICY_NAMES[p]}" for p in POLICY_LINES]
    headline = [card for card in CARDS if card.name in HEADLINE]
    if shown is not None:
        header += [f"predicted GiB at L={int(fits['n_languages_max'].max())} ({shown[0]}, batch {shown[1]})",
                   "worst case GiB", *(card.label for card in headline)]  # fmt: skip
    if quality is not None:
        buys = quality_cells(measured, quality)
        header += ["multilingual mAP, XQuAD-R held-out / MLQA-R (quality experiment)"]
    rows = []
    for strategy in strategy_styles(sorted(set(measured["strategy"]))):
        row = [strategy] + [cells.get((strategy, p, m), "–") for m in ("step_time_p50_s", "peak_tensor_bytes") for p in POLICY_LINES]
        if shown is not None:
            fit = by_strategy.loc[strategy] if strategy in by_strategy.index else None
            row += ["–"] * (2 + len(headline)) if fit is None else [
                f"{fit.total_gib_max:.1f}", "–" if pd.isna(fit.worst_gib_max) else f"{fit.worst_gib_max:.1f}",
                *(card_cell(fit, card) for card in headline)]  # fmt: skip
        if quality is not None:
            row += [buys.get(strategy, "not an arm")]
        rows.append(row)
    return markdown_table(header, rows)


def _calls(growth: pd.DataFrame, policy: str, metric: str, kind: str) -> str:
    """'flat for a, b; grows for c (+1.2 ms [+0.4, +2.0])' from the fits of one metric under one vocabulary policy."""
    fits = growth[(growth["tokenizer_policy"] == policy) & (growth["metric"] == metric)]
    order = list(strategy_styles(sorted(fits["strategy"])))
    fits = fits.assign(rank=fits["strategy"].map(order.index)).sort_values("rank")
    groups: dict[str, list[str]] = {}
    for fit in fits.itertuples(index=False):
        text = slope_text(fit.slope, fit.slope_ci_low, fit.slope_ci_high, fit.shape, kind)
        if fit.shape == "flat" or text.startswith("none"):
            groups.setdefault("no growth the 95% interval can resolve for", []).append(fit.strategy)
        elif fit.shape == "":
            groups.setdefault("no call (one seed) for", []).append(f"{fit.strategy} ({text})")
        else:
            verb = "falls for" if fit.slope < 0 else "grows for"
            groups.setdefault(verb, []).append(f"{fit.strategy} {text}")
    return "; ".join(f"{label} {', '.join(names)}" for label, names in groups.items()) or "–"


def answer_summary(measured: pd.DataFrame) -> list[str]:
    """The calls the measured fits support, per vocabulary policy, in words: which strategies' cost per added language
    the intervals resolve and which they do not (the criterion: bench.results.growth)."""
    state = measured.assign(state_bytes=measured["peak_param_bytes"] + measured["peak_optimizer_bytes"]) if {
        "peak_param_bytes", "peak_optimizer_bytes"} <= set(measured) else measured  # fmt: skip
    growth = growth_fits(state, ["step_time_p50_s", "peak_tensor_bytes", "state_bytes"])
    lines = []
    for policy in POLICY_LINES:
        if not (growth["tokenizer_policy"] == policy).any():
            continue
        line = (f"{POLICY_NAMES[policy].capitalize()}: time per step per added language: "
                f"{_calls(growth, policy, 'step_time_p50_s', 'seconds')}. Tensor memory per added language: "
                f"{_calls(growth, policy, 'peak_tensor_bytes', 'bytes')}.")
        vocabulary = growth[(growth["tokenizer_policy"] == policy) & (growth["metric"] == "state_bytes")]
        if len(vocabulary) and (vocabulary["slope"] > 0).all():
            texts: dict[str, list[str]] = {}
            for f in vocabulary.itertuples():
                texts.setdefault(slope_text(f.slope, f.slope_ci_low, f.slope_ci_high, f.shape, "bytes"), []).append(f.strategy)
            parts = [f"{text} ({', '.join(names)})" for text, names in texts.items()]
            line += f" Parameters and AdamW state per added language (the vocabulary itself): {'; '.join(parts)}."
        lines.append(line)
    return lines


def model_table(predicted: pd.DataFrame) -> str:
    """Per predicted model: its table (fixed, or growing with L: a counterfactual), parameters, and GiB (tensor peak +
    margin) of the contrastive strategies and of masked LM from the fewest to the most languages, the plan's maximum
    with the worst case at the most languages."""
    if predicted.empty:
        return ""
    rows = []
    for model, group in sorted(predicted.groupby("model"), key=lambda item: (item[0].split("-")[0], item[0])):
        low, high = group["n_languages"].min(), group["n_languages"].max()
        table = "fixed" if group["vocab_size"].nunique() == 1 else "grows with L (counterfactual)"
        cells = []
        for masked in (False, True):
            part = group[(group["strategy"] == "mbert") == masked]
            at = lambda n, column: part.loc[part["n_languages"] == n, column] if column in part else pd.Series(dtype=float)  # noqa: E731
            cells.append(f"{_gib_range(at(low, 'total_gib'))} → {_gib_range(at(high, 'total_gib'))} "
                         f"(worst {_gib_range(at(high, 'worst_total_gib'))})")
        table_rows = group.loc[group["n_languages"] == high, "vocab_size"].max()
        rows.append([model, f"{int(table_rows):,} rows at L={high}, {table}",
                     f"{group.loc[group['n_languages'] == high, 'model_params'].max() / 1e6:.0f} M", *cells])  # fmt: skip
    low, high = predicted["n_languages"].min(), predicted["n_languages"].max()
    header = ["model", "embedding table", "parameters (encoder)", f"contrastive strategies: GiB, L={low} → L={high}",
              f"masked LM: GiB, L={low} → L={high}"]  # fmt: skip
    return markdown_table(header, rows)


def _share_range(low: float, high: float) -> str:
    return f"{low:.0%}" if f"{low:.0%}" == f"{high:.0%}" else f"{low:.0%}–{high:.0%}"


def _gib_range(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    low, high = values.min(), values.max()
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}–{high:.1f}"


def workload_notes(measured: pd.DataFrame) -> list[str]:
    """What the measured rows say about the work behind 'flat': the length cap's share of steps, padding, masked LM's
    step against its driver. Every number from the rows (fixed vocabulary unless said)."""
    fixed = measured[measured["tokenizer_policy"] == "shared-all"]
    masked = fixed["strategy"] == "mbert"
    notes = []
    if "length_cap_step_fraction" in fixed and fixed["length_cap_step_fraction"].notna().any():
        by_l = fixed[~masked].groupby("n_languages")["length_cap_step_fraction"].mean()
        cap = int(fixed["max_length"].iloc[0]) if "max_length" in fixed else None
        notes.append(f"Length cap: {_share_range(by_l.min(), by_l.max())} of the contrastive strategies' measured steps hold "
                     f"a text cut at the {cap}-token cap (mean over runs at each L); at the cap a batch is as wide "
                     "as it can get, so part of a flat memory curve is the cap holding the widest batch constant.")
    if {"padding_fraction", "tokens_per_step"} <= set(fixed) and masked.any() and (~masked).any():
        contrastive = fixed[~masked].groupby("strategy")["padding_fraction"].mean()
        real = fixed["tokens_per_step"] * (1 - fixed["padding_fraction"])
        per_real = (fixed["step_time_p50_s"] / real).groupby(fixed["strategy"]).median()
        notes.append(f"Padding: masked LM pads questions and answers in one tensor, {fixed[masked]['padding_fraction'].mean():.0%} "
                     f"of its tokens, against {_share_range(contrastive.min(), contrastive.max())} for the contrastive "
                     f"strategies; per real token its step costs {per_real.get('mbert', float('nan')) * 1e6:.1f} µs against "
                     f"{per_real.drop('mbert', errors='ignore').min() * 1e6:.1f}–{per_real.drop('mbert', errors='ignore').max() * 1e6:.1f} µs "
                     "(median step time / real tokens per step). The table's figures are per step, padding included.")  # fmt: skip
    steps = step_cost_fits(measured)
    if steps.empty:
        return notes
    driver = steps[(steps["strategy"] == "mbert") & (steps["driver"] != "tokens per step")]
    for fit in driver.itertuples(index=False):
        growth = growth_fits(measured[(measured["strategy"] == "mbert") & (measured["tokenizer_policy"] == fit.tokenizer_policy)],
                             ["masked_tokens_per_step"])  # fmt: skip
        masked_growth = (f"; its masked tokens per step grow {slope_text(growth['slope'].iloc[0], growth['slope_ci_low'].iloc[0], growth['slope_ci_high'].iloc[0], growth['shape'].iloc[0], 'rate')} tokens per added language"
                         if len(growth) else "")  # fmt: skip
        notes.append(f"Masked LM, {POLICY_NAMES.get(fit.tokenizer_policy, fit.tokenizer_policy)}: step time = "
                     f"{fit.fixed_s * 1e3:.1f} ms + {fit.s_per_unit * 1e9:.3g} ns × ({fit.driver}) "
                     f"[{fit.s_per_unit_ci_low * 1e9:.3g}, {fit.s_per_unit_ci_high * 1e9:.3g}] ns, {fit.interval}, "
                     f"R² {fit.r2:.2f}{masked_growth}.")
    return notes


def answer_block(measured_dir: Path, predicted_dir: Path | None, quality_dir: Path | None = None) -> str:
    """The README's block `answer`: where the numbers come from, and the table."""
    measured = measured_runs(measured_dir)
    predicted = predicted_rows(usable_runs(load_results(predicted_dir))) if predicted_dir is not None else pd.DataFrame()
    quality = measured_runs(quality_dir) if quality_dir is not None else None
    seeds = seeds_per_point(measured)
    per_point = str(seeds.min()) if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    source = (f"Measured: `{Path(measured_dir).as_posix()}` ({len(measured)} runs, {per_point} seeds per point, "
              f"{distinct(measured, 'model')} model, {distinct(measured, 'cpu_model')})")
    if predicted_dir is not None:
        source += f"; predicted: `{Path(predicted_dir).as_posix()}` ({len(predicted)} rows, nothing allocated)"
    if quality is not None:
        source += (f"; quality: `{Path(quality_dir).as_posix()}` ({distinct(quality, 'model')}, its arms' "
                   f"{precision_label(quality_precision(quality))} runs, "
                   "mean over seeds; the paired tests are its verdict)")
    parts = [f"{source}. {CRITERIA}", *[f"- {line}" for line in answer_summary(measured)],
             answer_table(measured, predicted, quality)]
    if not predicted.empty:
        parts += ["Predicted per model, from the fewest to the most languages (the plan's maximum; in brackets the worst "
                  "case at the most languages: every text at the length cap and, for masked LM, the most masked tokens "
                  "the objective produces but once in 10⁹ steps). A real table is fixed; the counterfactual's grows "
                  "with L and meets the real one at the most languages:", model_table(predicted)]
    parts += [f"- {note}" for note in workload_notes(measured)]
    return "\n\n".join(parts)


def write_answer_figure(measured_dir: Path, predicted_dir: Path | None, out: Path) -> list[Path]:
    measured = measured_runs(measured_dir)
    predicted = predicted_rows(usable_runs(load_results(predicted_dir))) if predicted_dir is not None else pd.DataFrame()
    fig = answer_figure(measured, predicted)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=150)
    fig.savefig(out.with_suffix(".svg"))
    return [out.with_suffix(".png"), out.with_suffix(".svg")]
