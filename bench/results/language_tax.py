"""The language tax: what the languages themselves cost before any model runs.

Two costs that a language brings into every training step, both read off tokenised text alone:
  - tokens per text: a parallel dataset (XQuAD-R) asks the same questions in every language, so the
    ratio of a language's token count to the reference language's, over the same parallel groups, is
    the tokenizer's tax on that language (more tokens: more compute and memory per example);
  - padding: a batch is padded to its longest text, so mixing languages of different lengths in one
    batch wastes compute on pad tokens; the padding fraction is 1 - real tokens / padded tokens,
    summed over a plan's batches (not a mean of per-batch fractions).

A third cost is measured: the time of a training step on a batch of each language. On parallel data the
same groups make a batch in every language, so the ratio of a language's median step time to the
reference's is what the language itself costs the model (`time_rows`).

Everything here is a pure function of token counts, collated batches and timed samples (`python
tests/benchmarks/language_tax.py` tokenises, collates, times and writes).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Hashable, Protocol

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results.markdown import fmt, markdown_table

KINDS = ("question", "answer")  # the two sides of a training pair: query and answer sentence
FIGURE_STEM = "language_tax"
_STYLE = {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
          "svg.fonttype": "none"}  # fmt: skip
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")

Encode = Callable[[list[str]], list[list[int]]]
# lengths[language][kind][parallel group] = tokens of that group's text of that kind in that language
Lengths = Mapping[str, Mapping[str, Mapping[Hashable, int]]]


class Collated(Protocol):
    """What a collated batch reports about its work (bench.data.collate.Batch has both)."""

    padded_tokens: int
    real_tokens: int


def count_tokens(encode: Encode, texts: Mapping[Hashable, str]) -> dict[Hashable, int]:
    """Tokens of each text, keyed as the texts are, from one batched call of `encode`."""
    keys = list(texts)
    return {key: len(ids) for key, ids in zip(keys, encode([texts[k] for k in keys]), strict=True)}


def paired_ratio(counts: Mapping[Hashable, int], reference: Mapping[Hashable, int]) -> float:
    """Total tokens over the keys both share, divided by the reference's total over the same keys:
    on parallel texts, how many tokens a language needs for what the reference says in one."""
    shared = counts.keys() & reference.keys()
    reference_total = sum(reference[k] for k in shared)
    if not shared or reference_total == 0:
        raise ValueError("paired_ratio: no shared keys with reference tokens to compare")
    return sum(counts[k] for k in shared) / reference_total


def length_summary(counts: Iterable[int], max_length: int | None = None) -> dict[str, float]:
    """Mean and median tokens per text, and the fraction of texts that `max_length` would truncate."""
    values = list(counts)
    if not values:
        raise ValueError("length_summary: no texts")
    summary = {"mean_tokens": statistics.fmean(values), "median_tokens": float(statistics.median(values))}
    if max_length is not None:
        summary["truncated_frac"] = sum(v > max_length for v in values) / len(values)
    return summary


def token_tax_rows(tokenizer: str, lengths: Lengths, unk_rates: Mapping[str, float], reference: str = "en",
                   max_length: int | None = None) -> list[dict]:  # fmt: skip
    """One row per language (in `lengths` order): per kind its mean, median, ratio to `reference` over
    the shared parallel groups and truncated fraction; the language's unknown-token rate."""
    if reference not in lengths:
        raise ValueError(f"token_tax_rows: reference language {reference!r} has no lengths")
    rows = []
    for lang, by_kind in lengths.items():
        row = {"tokenizer": tokenizer, "language": lang, "reference": reference, "n_texts": len(by_kind[KINDS[0]])}
        for kind in KINDS:
            summary = length_summary(by_kind[kind].values(), max_length)
            row.update({f"{kind}_{key}": value for key, value in summary.items()})
            row[f"{kind}_ratio"] = paired_ratio(by_kind[kind], lengths[reference][kind])
        row["unk_rate"] = unk_rates.get(lang)
        rows.append(row)
    return rows


def padding_row(strategy: str, objective: str, tokenizer: str, batches: Iterable[Collated]) -> dict:
    """Padded and real tokens summed over `batches`, and the padding fraction 1 - real / padded."""
    padded = real = n = 0
    for batch in batches:
        padded, real, n = padded + batch.padded_tokens, real + batch.real_tokens, n + 1
    if padded == 0:
        raise ValueError(f"padding_row: no padded tokens for strategy {strategy!r}")
    return {"strategy": strategy, "objective": objective, "tokenizer": tokenizer, "n_batches": n,
            "padded_tokens": padded, "real_tokens": real, "padding_fraction": 1 - real / padded}  # fmt: skip


def time_rows(model: str, compute_s: Mapping[str, Sequence[float]], step_s: Mapping[str, Sequence[float]],
              real_tokens: Mapping[str, Sequence[int]], batch_size: int, reference: str = "en") -> list[dict]:  # fmt: skip
    """One row per language (in `compute_s` order) from per-step samples of the same batches in every language:
    median forward + backward seconds and its interquartile range, seconds per example of the whole step
    (optimizer included), and the ratios to `reference` of compute time and of real tokens per step."""
    if reference not in compute_s:
        raise ValueError(f"time_rows: reference language {reference!r} has no samples")
    ref_compute, ref_tokens = statistics.median(compute_s[reference]), statistics.fmean(real_tokens[reference])
    rows = []
    for lang, samples in compute_s.items():
        if len(samples) < 3:
            raise ValueError(f"time_rows: {lang!r} has {len(samples)} timed steps; a median and quartiles need 3 or more")
        q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        tokens = statistics.fmean(real_tokens[lang])
        rows.append({"model": model, "language": lang, "reference": reference, "steps": len(samples), "batch_size": batch_size,
                     "compute_median_s": median, "compute_q1_s": q1, "compute_q3_s": q3,
                     "step_s_per_example": statistics.median(step_s[lang]) / batch_size,
                     "compute_ratio": median / ref_compute, "real_tokens_per_step": tokens, "tokens_ratio": tokens / ref_tokens})  # fmt: skip
    return rows


def time_table_markdown(rows: Sequence[dict]) -> str:
    """Models as blocks of rows: per language its tokens and compute time relative to the reference."""
    reference = rows[0]["reference"]
    header = ["model", "language", "timed steps", "real tokens per step", f"tokens × {reference}",
              "forward + backward (median [IQR])", f"time × {reference}", "ms per example (whole step)"]  # fmt: skip
    body = [[r["model"], r["language"], r["steps"], f"{r['real_tokens_per_step']:,.0f}", f"{r['tokens_ratio']:.3f}",
             f"{1e3 * r['compute_median_s']:.1f} ms [{1e3 * r['compute_q1_s']:.1f}, {1e3 * r['compute_q3_s']:.1f}]",
             f"{r['compute_ratio']:.3f}", f"{1e3 * r['step_s_per_example']:.2f}"] for r in rows]  # fmt: skip
    return markdown_table(header, body)


def _distinct(rows: Sequence[dict], key: str) -> list:
    return list(dict.fromkeys(row[key] for row in rows))


def token_table_markdown(rows: Sequence[dict]) -> str:
    """One Markdown table of one tokenizer's rows: tokens per question and per answer, ratios, unknowns."""
    reference = rows[0]["reference"]
    header = ["language", "texts", "question mean", "question median", f"question × {reference}", "answer mean",
              "answer median", f"answer × {reference}", "answers truncated", "unknown tokens"]  # fmt: skip
    body = [[r["language"], r["n_texts"], fmt(r["question_mean_tokens"]), fmt(r["question_median_tokens"]),
             f"{r['question_ratio']:.3f}", fmt(r["answer_mean_tokens"]), fmt(r["answer_median_tokens"]),
             f"{r['answer_ratio']:.3f}", _percent(r.get("answer_truncated_frac")), _percent(r["unk_rate"], 3)]
            for r in rows]  # fmt: skip
    return markdown_table(header, body)


def padding_table_markdown(rows: Sequence[dict]) -> str:
    """Strategies as rows, each tokenizer's padded tokens, real tokens and padding fraction as columns."""
    tokenizers = _distinct(rows, "tokenizer")
    cell = {(r["strategy"], r["tokenizer"]): r for r in rows}
    header = ["strategy", "objective", "batches"]
    header += [f"{t}: {what}" for t in tokenizers for what in ("padded tokens", "real tokens", "padding")]
    body = []
    for strategy in _distinct(rows, "strategy"):
        first = next(r for r in rows if r["strategy"] == strategy)
        line = [strategy, first["objective"], first["n_batches"]]
        for t in tokenizers:
            r = cell.get((strategy, t))
            line += [f"{r['padded_tokens']:,}", f"{r['real_tokens']:,}", _percent(r["padding_fraction"])] if r else ["", "", ""]
        body.append(line)
    return markdown_table(header, body)


def _percent(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def render_markdown(title: str, notes: Sequence[str], token_rows: Sequence[dict], padding_rows: Sequence[dict],
                    timing: str, figure: str | None = None) -> str:  # fmt: skip
    """The report: notes, one token table per tokenizer, the padding table, the timing section."""
    parts = [f"# {title}", "\n".join(f"- {note}" for note in notes)]
    for tokenizer in _distinct(token_rows, "tokenizer"):
        parts += [f"## Tokens per text: {tokenizer}", token_table_markdown([r for r in token_rows if r["tokenizer"] == tokenizer])]
    if padding_rows:
        parts += ["## Padding per strategy", padding_table_markdown(padding_rows)]
    parts += ["## Time per example per language", timing]
    if figure:
        parts += ["## Figure", f"![the language tax]({figure})"]
    return "\n\n".join(parts) + "\n"


def plot_language_tax(token_rows: Sequence[dict], padding_rows: Sequence[dict], out_dir: Path,
                      time_rows: Sequence[dict] = ()) -> list[Path]:  # fmt: skip
    """Panels with a bar per tokenizer (or model): tokens per question relative to the reference language
    per language (answers as dots), padding fraction per strategy, and, when timed, forward + backward time
    per language relative to the reference (tokens per step as dots). Writes FIGURE_STEM.png and .svg."""
    tokenizers = list(dict.fromkeys(_distinct(token_rows, "tokenizer") + _distinct(padding_rows, "tokenizer")))
    width = 0.8 / max(1, len(tokenizers))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(12 + 6 * bool(time_rows), 4.6), layout="constrained")
        FigureCanvasAgg(fig)
        panels = fig.subplots(1, 2 + bool(time_rows), gridspec_kw={"width_ratios": [1.6, 1] + [1.6] * bool(time_rows)})
        left, right = panels[:2]
        reference = token_rows[0]["reference"] if token_rows else "reference"
        _ratio_panel(left, token_rows, "tokenizer", ("question_ratio", "questions"), ("answer_ratio", "answer sentences"),
                     f"tokens per text relative to {reference} (same parallel texts)",
                     f"Tokenizer tax: tokens per question ÷ {reference}")  # fmt: skip
        strategies = _distinct(padding_rows, "strategy")
        for i, tokenizer in enumerate(tokenizers):
            rows = {r["strategy"]: r for r in padding_rows if r["tokenizer"] == tokenizer}
            xs = [j + (i - (len(tokenizers) - 1) / 2) * width for j, s in enumerate(strategies) if s in rows]
            bars = right.bar(xs, [100 * rows[s]["padding_fraction"] for s in strategies if s in rows], width,
                             color=_COLOURS[i % len(_COLOURS)], label=tokenizer)  # fmt: skip
            right.bar_label(bars, fmt="%.0f", fontsize=7)
        right.set_xticks(range(len(strategies)), strategies, rotation=20, ha="right")
        right.set_ylabel("padding: % of padded tokens that are pad")
        right.set_title("Padding per strategy (L = 11)")
        right.set_ylim(0, 100)
        right.legend(loc="upper left")
        if time_rows:
            _time_panel(panels[2], time_rows)
        paths = [out_dir / f"{FIGURE_STEM}.png", out_dir / f"{FIGURE_STEM}.svg"]
        fig.savefig(paths[0], dpi=150)
        fig.set_layout_engine("none")  # keep the layout the PNG computed
        fig.savefig(paths[1])
    return paths


def _time_panel(ax, rows: Sequence[dict]) -> None:
    reference = rows[0]["reference"]
    _ratio_panel(ax, rows, "model", ("compute_ratio", "forward + backward time"), ("tokens_ratio", "real tokens per step"),
                 f"relative to {reference} (the same parallel batches)",
                 f"Time of a training step on one language's batch ÷ {reference}")  # fmt: skip


def _ratio_panel(ax, rows: Sequence[dict], series: str, bars: tuple[str, str], dots: tuple[str, str], ylabel: str,
                 title: str) -> None:  # fmt: skip
    """Per language, a bar per `series` value (tokenizer or model) for one ratio to the reference, dots for another."""
    names, languages = _distinct(rows, series), _distinct(rows, "language")
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        by_lang = {r["language"]: r for r in rows if r[series] == name}
        xs = [j + (i - (len(names) - 1) / 2) * width for j, lang in enumerate(languages) if lang in by_lang]
        colour = _COLOURS[i % len(_COLOURS)]
        ax.bar(xs, [by_lang[lang][bars[0]] for lang in languages if lang in by_lang], width, color=colour,
               label=f"{name}: {bars[1]}")  # fmt: skip
        ax.plot(xs, [by_lang[lang][dots[0]] for lang in languages if lang in by_lang], "o", color="black",
                markerfacecolor=colour, ms=4, label=f"{name}: {dots[1]}")  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(range(len(languages)), languages)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left")
