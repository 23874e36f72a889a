"""The language tax on XQuAD-R: tokens per text per language and padding per strategy, at L = 11.

For the training split of XQuAD-R (all 11 languages, `split_by_article(full, 0.25)[0]`, 893 parallel
groups each) and two tokenizers, the project's default shared WordPiece (`tokenizer=shared-all`) and
multilingual-e5-small's own SentencePiece (`model=me5-small`, i.e. `tokenizer=pretrained`, untrimmed):
  - tokens per question and per answer sentence (one answer per question, as training pairs them):
    mean, median and ratio to English over the same parallel groups, without truncation, with the
    special tokens each tokenizer's template adds ([CLS] [SEP] / <s> </s>) and without mE5's
    "query: " / "passage: " prefixes (the raw text's tokens), plus the unknown-token rate
    (bench.data.tokenizer.unknown_rates: no prefix, no special tokens; questions and answers together);
  - per registered strategy, the first BATCHES batches of its plan collated as a run would (the run's
    tokenisation: prefixes included for mE5, truncated at train.max_length): padded tokens, real tokens
    and padding fraction. The plans are the same under both tokenizers (same sampler, seed and pairs).
  - per model (the tiny default under the shared WordPiece; mE5-small under its own tokenizer), the time of a
    training step (monolingual strategy, fp32, train.threads) on a batch of each language: every repetition
    draws BATCH groups once and times them in every language, languages in a shuffled order, after one
    untimed warm-up round; forward + backward and the whole step (optimizer included) are timed apart.
    Needs a quiet machine: run it alone.

    python tests/benchmarks/language_tax.py [--batches 200] [--reps 20 8] [--out results/language-tax]

Every table and the report get a provenance sidecar (`<file>.provenance.json`): the machine's calibration
before the timing (and after it), the settings and tokenizers, commit, CPU and the exact command.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout, installed or not

from bench.config import plan_runs  # noqa: E402
from bench.core.pairs import PairRef  # noqa: E402
from bench.data.tokenizer import unknown_rates  # noqa: E402
from bench.measure.evidence import command_line, evidence_header  # noqa: E402
from bench.results.language_tax import (  # noqa: E402
    KINDS, count_tokens, paired_ratio, padding_row, plot_language_tax, render_markdown, time_rows, time_table_markdown,
    token_tax_rows,
)  # fmt: skip
from bench.measure.calibration import calibrate  # noqa: E402
from bench.measure.sidecar import write_provenance  # noqa: E402
from bench.stages import build_objective, build_optimizer, make_collate, plan_batches, prepare_data  # noqa: E402
from bench.strategies import strategy_names  # noqa: E402

LANGUAGES = "languages=11"
# mE5-small with train=default, not its preset's train=finetune: the same max length and batch as the tiny rows,
# so the tokenizer (and, timed, the model) is the only difference.
TOKENIZERS = {  # label: overrides that select the tokenizer
    "WordPiece shared-all": (),
    "mE5-small": ("model=me5-small", "train=default", "model.trim_vocabulary=false"),
}
TIMED = {  # label: overrides of the model whose training step is timed per language (its own tokenizer)
    "tiny (WordPiece shared-all)": (),
    # Frozen, trimmed embeddings: the language acts on the encoder; a dense gradient and AdamW state over all
    # 250k vocabulary rows cost the same in every language and drowned it (en 6.8 s [4.0, 7.0] a step, 5 rounds).
    "mE5-small, frozen embeddings": ("model=me5-small", "train=default", "model.freeze_embeddings=true",
                                     "model.trim_vocabulary=true"),
}


def compose(*overrides: str):
    (planned,) = plan_runs("config", list(overrides), sweep=False)
    return planned.config


def token_rows(label: str, overrides: tuple[str, ...], prepared, max_length: int) -> tuple[list[dict], dict]:
    """Per-language rows for one tokenizer, and what the counts include."""
    raw = replace(prepared.tokenizer, query_prefix="", passage_prefix="")  # the raw text's tokens
    pairs = prepared.pairs
    texts = {"question": pairs.queries, "answer": pairs.passages}
    languages = prepared.pairs.index.languages
    lengths = {lang: {kind: count_tokens(lambda t, kind=kind: raw.encode(t, "query" if kind == "question" else "passage"),
                                         {g: s for (g, l), s in texts[kind].items() if l == lang})
                      for kind in KINDS}
               for lang in languages}  # fmt: skip
    unk = unknown_rates(raw, {lang: [s for kind in KINDS for (g, l), s in texts[kind].items() if l == lang] for lang in languages})
    specials = raw.backend.encode("").tokens
    info = {"tokenizer": prepared.tokenizer.name, "vocab_size": prepared.tokenizer.vocab_size, "overrides": list(overrides),
            "special_tokens_counted": specials, "prefixes_in_counts": False,
            "prefixes_in_padding": [prepared.tokenizer.query_prefix, prepared.tokenizer.passage_prefix]}  # fmt: skip
    return token_tax_rows(label, lengths, unk, "en", max_length), info


def padding_rows(label: str, overrides: tuple[str, ...], prepared, n_batches: int) -> list[dict]:
    rows = []
    for name in strategy_names():
        cfg = compose(*overrides, f"strategy={name}", LANGUAGES)
        plan = plan_batches(cfg, prepared.pairs)[:n_batches]
        collate = make_collate(cfg, prepared)  # prepared does not depend on the strategy: data, tokenizer, max_length
        rows.append(padding_row(name, cfg.strategy.objective, label, (collate(step, refs) for step, refs in enumerate(plan))))
        print(f"  {name}: {rows[-1]['padding_fraction']:.4f} over {rows[-1]['n_batches']} batches", flush=True)
    return rows


def time_per_language(label: str, overrides: tuple[str, ...], reps: int, seed: int = 0) -> list[dict]:
    """Median step times per language on the same parallel batches (see the module docstring)."""
    cfg = compose(*overrides, "strategy=monolingual", LANGUAGES)
    prepared = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.train.threads)
    objective = build_objective(cfg, prepared)
    objective.train()
    optimizer = build_optimizer(cfg, objective)
    collate = make_collate(cfg, prepared)
    languages = list(prepared.pairs.index.languages)
    everywhere = [g for g, langs in enumerate(prepared.pairs.index.group_languages) if langs >= set(languages)]
    rng = random.Random(seed)
    compute = {lang: [] for lang in languages}
    step = {lang: [] for lang in languages}
    tokens = {lang: [] for lang in languages}
    for rep in range(reps + 1):  # round 0 warms up allocator and kernels, untimed
        groups = rng.sample(everywhere, cfg.train.batch_size)
        for lang in rng.sample(languages, len(languages)):
            batch = collate(rep, [PairRef(g, lang, lang) for g in groups])
            started = time.perf_counter()
            loss = objective(**batch.inputs)
            loss.backward()
            computed = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = time.perf_counter()
            if rep:
                compute[lang].append(computed - started)
                step[lang].append(done - started)
                tokens[lang].append(batch.real_tokens)
        print(f"  {label}: round {rep}/{reps}", flush=True)
    return time_rows(label, compute, step, tokens, cfg.train.batch_size)


def character_note(prepared) -> str:
    """Characters per text relative to English: how much of a token ratio is the text's own length."""
    pairs, languages = prepared.pairs, prepared.pairs.index.languages
    ratios = {kind: {lang: paired_ratio({g: len(s) for (g, l), s in texts.items() if l == lang},
                                        {g: len(s) for (g, l), s in texts.items() if l == "en"}) for lang in languages}
              for kind, texts in (("questions", pairs.queries), ("answers", pairs.passages))}  # fmt: skip
    candidates = {lang: len(prepared.train_split.by_lang[lang].candidates) for lang in languages}
    listed = "; ".join(f"{kind}: " + ", ".join(f"{lang} {r:.2f}" for lang, r in by_lang.items()) for kind, by_lang in ratios.items())
    return (f"Characters × en over the same groups (no tokenizer involved; zh and other scripts are not comparable "
            f"by characters): {listed}. Candidate sentences in the training split per language: "
            + ", ".join(f"{lang} {n}" for lang, n in candidates.items())
            + ". A language whose sentence breaks merge sentences (fewer candidates) has longer answer "
            "sentences whatever the tokenizer: its answer ratio is partly segmentation, not tokenizer tax.")


def timing_section(rows: list[dict], threads: int) -> str:
    if not rows:
        return "Not measured in this run (--reps 0)."
    return ("A training step of the monolingual strategy (fp32, batch of the same parallel groups in every language, "
            f"{threads} threads) per model under its own tokenizer; forward + backward is where the language acts, the "
            "optimizer's share is the same in every language. Time × en follows tokens × en where compute grows with "
            "tokens; seconds are this machine's (calibration in the notes).\n\n" + time_table_markdown(rows))


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="planned batches collated per strategy")
    parser.add_argument("--reps", type=int, nargs=len(TIMED), default=[20, 8], metavar="N",
                        help=f"timed rounds per model ({', '.join(TIMED)}); 0 skips a model")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results/language-tax"))
    args = parser.parse_args()
    threads = compose(LANGUAGES).train.threads
    header = evidence_header(command_line(), threads)  # the timings below are this machine's seconds: its calibration
    timed = [row for (label, overrides), reps in zip(TIMED.items(), args.reps) if reps
             for row in time_per_language(label, overrides, reps)]  # fmt: skip
    after = calibrate(threads)
    torch.set_num_threads(1)
    tokens, padding, tokenizers = [], [], {}
    for label, overrides in TOKENIZERS.items():
        cfg = compose(*overrides, LANGUAGES)
        prepared = prepare_data(cfg)
        print(f"{label}: {prepared.tokenizer.name}, vocabulary {prepared.tokenizer.vocab_size}", flush=True)
        rows, tokenizers[label] = token_rows(label, overrides, prepared, cfg.train.max_length)
        tokens += rows
        padding += padding_rows(label, overrides, prepared, args.batches)
        settings = {"batch_size": cfg.train.batch_size, "max_length": cfg.train.max_length, "seed": cfg.seed,
                    "planned_steps": cfg.steps, "languages": list(cfg.languages), "dataset": cfg.data.name,
                    "heldout_fraction": cfg.data.heldout_fraction}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "language_tax.csv", tokens)
    write_csv(args.out / "padding_by_strategy.csv", padding)
    if timed:
        write_csv(args.out / "time_by_language.csv", timed)
    plot_language_tax(tokens, padding, args.out, timed)
    specials = "; ".join(f"{label}: {' '.join(info['special_tokens_counted'])}" for label, info in tokenizers.items())
    notes = [
        f"XQuAD-R training split (held-out fraction {settings['heldout_fraction']}), {tokens[0]['n_texts']} parallel "
        "groups per language; one answer sentence per question, as training pairs them.",
        f"Counts: no truncation, special tokens included as the run adds them ({specials}); mE5's "
        "'query: ' / 'passage: ' prefixes are NOT counted (raw text). × en: total tokens over the same "
        "parallel groups ÷ English's. Answers truncated: share of answer sentences longer than "
        f"train.max_length={settings['max_length']} tokens. Unknown tokens: share of tokens that are "
        "[UNK] / <unk>, questions and answers, no special tokens.",
        f"Padding: the first {args.batches} batches of each strategy's plan (seed {settings['seed']}, batch size "
        f"{settings['batch_size']}, L=11), collated as the run collates: truncated at train.max_length="
        f"{settings['max_length']}, mE5 with its prefixes; padding = 1 - real / padded tokens summed over the "
        "batches. Contrastive batches pad questions and answers separately; mbert pads both in one tensor.",
        character_note(prepared),
        "Unknown tokens: the shared-all WordPiece is trained on this split's own text, so its rate is 0 by "
        "construction; mE5's is its real coverage of this text.",
        f"Command: `{header['command']}`; commit {header['git_commit']} (dirty: {header['git_dirty']}); "
        f"{header['cpu_model']}, calibration {header['calibration']['matmul_gflops']} GFLOP/s before the timing and "
        f"{after['matmul_gflops']} after ({threads} threads).",
    ]
    text = render_markdown("The language tax: what the languages themselves cost", notes, tokens, padding,
                           timing_section(timed, threads), "language_tax.png")  # fmt: skip
    (args.out / "language_tax.md").write_text(text)
    tables = ["language_tax.csv", "padding_by_strategy.csv"] + ["time_by_language.csv"] * bool(timed)
    for name in [*tables, "language_tax.md"]:  # the figures are drawings of these tables
        write_provenance(args.out / name, header, calibration_after=after, settings=settings,
                         batches_per_strategy=args.batches, timed_rounds=dict(zip(TIMED, args.reps)),
                         tokenizers=tokenizers)  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
