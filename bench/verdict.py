"""The verdicts of a pre-registered experiment: `python -m bench.verdict CLAIMS_FILE [--results-dir DIR]`.

Reads the claims file (conf/claims/<experiment>.yaml) and the runs of its results directory, tests
every claim on every set with the hierarchical paired bootstrap (bench.results.claims), and writes
DIR/verdict.md, DIR/verdict.parquet (or the claims file's `output` name)
and DIR/plots/alpha_frontier.{png,svg} (when the claims file has arms along alpha), or with an axis of L
(`languages`) per-language tables in verdict.md and DIR/plots/quality_by_languages.{png,svg}, trained and
untrained languages apart. Claims whose arms have no ok runs yet are "not run", so it works on a partial experiment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from bench.errors import ConfigError, exit_on_user_error
from bench.results.by_language import language_levels, language_section, plot_by_languages
from bench.results.claims import Claims, evaluate_claims, load_arms, load_claims
from bench.results.frontier import plot_frontier
from bench.results.readme_sync import replace_block
from bench.results.store import load_results, read_sweeps, write_table_atomic
from bench.results.targets import cost_cell, cost_to_targets
from bench.results.verdict_table import markdown_table, verdict_markdown

PLOTS_DIR = "plots"
REFERENCES_FILE = "references.json"  # bench.evaluation.references writes it; importing that module loads torch


def number(value: float, signed: bool = False) -> str:
    return "–" if pd.isna(value) else (f"{value:+.4f}" if signed else f"{value:.4f}")


def details_table(frame: pd.DataFrame) -> str:
    """Every (claim, set) test with its p-values, standard error, detectable effect and seeds."""
    header = ["claim", "set", "estimate", "95% CI", "p (raw)", "p (Holm)", "p against (Holm)", "min detectable",
              "seeds", "verdict"]  # fmt: skip
    rows = [[r.id, r.set, number(r.estimate, True),
             f"[{number(r.ci_low, True)}, {number(r.ci_high, True)}]" if pd.notna(r.estimate) else "–",
             number(r.p_raw), number(r.p_holm), number(r.p_refute_holm), number(r.min_detectable), r.n_seeds,
             r.verdict] for r in frame.itertuples()]  # fmt: skip
    return markdown_table(header, rows)


def cost_table(claims: Claims, results_dir: Path) -> str | None:
    """Cost to each pre-registered target, per arm: censored runs counted (None without targets or runs)."""
    if not claims.targets or not (results_dir / "results.parquet").is_file():
        return None
    table = cost_to_targets(claims, load_results(results_dir))
    columns = [(m, t) for m, ladder in claims.targets.items() for t in ladder]
    rows = [[arm] + [cost_cell(table[(table.arm == arm) & (table.metric == m) & (table.target == t)].iloc[0]) for m, t in columns]
            for arm in claims.arms]  # fmt: skip
    return markdown_table(["arm", *[f"{m} ≥ {t:g}" if m != "rank_distance" else f"{m} ≤ {t:g}" for m, t in columns]], rows)


def cost_section(claims: Claims, results_dir: Path) -> list[str]:
    """verdict.md's cost-to-target section, with the machine beside the seconds."""
    table = cost_table(claims, results_dir)
    if table is None:
        return []
    return ["## Cost to target", "",
            "Training pairs (and training seconds, evaluation excluded) until the curve (every 25 steps on a fixed "
            "subset of held-out articles) first reaches each target fixed before the runs; the median over all of an "
            "arm's runs, a run that never reached the target counted as not reached, with k/n runs that reached it. "
            "Seconds: the median over the runs not flagged contended (another process took CPU while a contended run "
            "trained), which a cell names when it is not all of them. Resolution: one curve interval.", "", machine_line(results_dir), "", table, ""]  # fmt: skip


def machine_line(results_dir: Path) -> str:
    """The machines and calibrations of the sweeps that wrote the rows (seconds are only comparable with them)."""
    entries = read_sweeps(results_dir)
    if not entries:
        return "Machine: not recorded."
    parts = {f"{e.get('cpu_model')} ({e['calibration']['matmul_gflops']} GFLOP/s fp32 matmul, {e['calibration']['threads']} threads)"
             for e in entries if e.get("calibration")}  # fmt: skip
    return "Machine (calibration per sweep): " + "; ".join(sorted(parts))


# How claims along L are decided: said only in the verdicts of a claims file with an axis of L (`languages`).
LANGUAGE_METHOD = [
    "- L: a claim made `at` several L is one test per L (`<id>@L<n>`, the runs trained on n languages), each in the "
    "family. trend over L: the least-squares slope against L of an arm's means, or of a − b (paired by seed at "
    "every L, on the seeds every L has); mAP per added language.",
    "- trained / untrained languages: a cell of the metric (a query language; for map_cross the query and pool "
    "languages) is trained when every language it names is one the run trained on (its row's `languages`), untrained "
    "otherwise; the multilingual pool names none. Each run's macro average over its own cells in the scope.",
]


def document(frame: pd.DataFrame, claims: Claims, results_dir: Path, figures: list[Path],
             by_language: pd.DataFrame | None = None) -> str:  # fmt: skip
    """verdict.md: the verdict table, how it was decided, the details, the per-language results and the figures."""
    run = frame["verdict"] != "not run"
    return "\n".join([
        f"# Verdicts: {claims.experiment}", "",
        f"Results: `{results_dir}`. Primary set: {claims.sets[claims.primary_set]}.", "",
        verdict_markdown(frame, claims), "",
        "## How the verdicts were decided", "",
        f"- Bootstrap: hierarchical and paired, {claims.replicates} replicates, seed {claims.seed}. Each replicate "
        "resamples question clusters (a question and its translations) with replacement, one draw shared by every "
        "arm and seed, and seeds with replacement: jointly over the shared seeds for a difference, per arm for an "
        "extreme or a trend. The statistic is the mean over resampled seeds of the run-level macro average.",
        f"- Family: {len(frame)} (claim, set) tests ({int(run.sum())} with runs; tests not run count as p = 1), "
        f"Holm-adjusted at {claims.significance:g} family-wise.",
        "- greater / less: confirmed when the Holm-adjusted one-sided p in the expected direction is below the "
        "level, refuted when the one in the opposite direction is, unresolved otherwise.",
        f"- equivalent: confirmed by TOST within ±{claims.margin:g} (the larger one-sided p, Holm-adjusted); refuted "
        "when the difference is significantly outside the margin; unresolved otherwise.",
        "- extreme: the arm's margin over its closest rival (intersection-union: beyond 0 only if beyond every arm). "
        "trend: the least-squares slope of the arm means against alpha.",
        "- too few seeds: an arm with fewer than 2 seeds on the set; the estimate and interval are shown, but one seed "
        "cannot show seed-to-seed variance, so the test is not judged (it counts as p = 1 in the family).",
        "- The interval is the 95% percentile interval, not adjusted for multiplicity.",
        "- Min detectable: 2.8 × the bootstrap standard error, the true effect a two-sided 5% test would find "
        "with 80% power; an unresolved claim whose effect may be smaller than this is underpowered, not refuted.",
        "- Sign agrees: whether a non-primary set's estimate has the primary set's sign.",
        *(LANGUAGE_METHOD if claims.languages else []), "",
        "## Every test", "", details_table(frame), "",
        *cost_section(claims, results_dir),
        *(language_section(by_language, claims) if by_language is not None else []),
        *[f"![{path.stem.replace('_', ' ')}]({path.relative_to(results_dir)})" for path in figures
          if path.suffix == ".png"], "",
    ])  # fmt: skip


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verdict", description=__doc__.splitlines()[0])
    parser.add_argument("claims_file", type=Path, help="conf/claims/<experiment>.yaml")
    parser.add_argument("--results-dir", type=Path, help="overrides the claims file's results_dir")
    parser.add_argument("--readme", type=Path, help="also rewrite this README's generated block of the experiment's verdicts")
    args = parser.parse_args(argv)
    claims = load_claims(args.claims_file)
    results_dir = args.results_dir or claims.results_dir
    if results_dir is None:
        raise ConfigError("results_dir: not in the claims file; pass --results-dir")
    arms = load_arms(claims, results_dir)
    frame = evaluate_claims(claims, arms)
    references_path = results_dir / REFERENCES_FILE
    references = json.loads(references_path.read_text()) if references_path.is_file() else {}
    # A frontier needs arms along alpha; a claims file without them (e.g. a precision-parity family) draws none.
    figures = plot_frontier(results_dir, claims, results_dir / PLOTS_DIR, references=references, arms=arms) if claims.alpha_of_arm else []
    # Along L: each arm's quality on trained and untrained languages, as tables in verdict.md and a figure.
    by_language = language_levels(claims, arms) if claims.languages else None
    if by_language is not None:
        figures += plot_by_languages(by_language, claims, results_dir / PLOTS_DIR)
    # Several claims files may judge one results directory: each names its own files (`output`).
    table_path, document_path = results_dir / f"{claims.output}.parquet", results_dir / f"{claims.output}.md"
    write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), table_path)
    document_path.write_text(document(frame, claims, results_dir, figures, by_language))
    written = [document_path, table_path, *figures]
    if args.readme is not None:
        text = args.readme.read_text()
        args.readme.write_text(replace_block(text, readme_block_name(claims), readme_block(frame, claims, results_dir)))
        written.append(args.readme)
    for path in written:
        print(f"wrote {path}")
    return 0


def readme_block_name(claims: Claims) -> str:
    return f"verdict:{claims.experiment}"


def readme_block(frame: pd.DataFrame, claims: Claims, results_dir: Path) -> str:
    """What the README shows of an experiment: the verdict table, how many runs it rests on, cost to target."""
    results = load_results(results_dir) if (results_dir / "results.parquet").is_file() else pd.DataFrame()
    ok = int((results["status"] == "ok").sum()) if len(results) else 0
    lines = [f"From `{results_dir}` ({ok} ok runs; `python -m bench.verdict` writes this block and "
             f"[`{claims.output}.md`]({results_dir / (claims.output + '.md')}) with every test's p-values and detectable effect).", "",
             verdict_markdown(frame, claims)]  # fmt: skip
    table = cost_table(claims, results_dir)
    if table is not None:
        lines += ["", "Cost to the pre-registered targets (curve subset; training pairs and seconds, median over all of "
                  "an arm's runs with those that never got there counted as not reached; k/n reached; seconds from the runs not "
                  "flagged contended only). "
                  + machine_line(results_dir), "", table]  # fmt: skip
    return "\n".join(lines).strip()


if __name__ == "__main__":
    raise SystemExit(main())
