"""`python -m bench.evaluate`: retrieval quality of a saved encoder, or of the lexical baseline.

    python -m bench.evaluate --lexical --dataset xquad-r --dataset mlqa-r --out results/lexical
    python -m bench.evaluate --encoder DIR --seen-languages en,de --out results/eval/DIR
    python -m bench.evaluate --lexical --dataset path/to/beir-dir
    python -m bench.evaluate --lexical --dataset xquad-r-heldout --languages en,de,zh \\
        --export-beir exports --export-settings multi,mono --run-depth 0

LAReQA sets (xquad-r, xquad-r-heldout, xquad-r-train, mlqa-r) get the mono / cross / multi
protocol of `bench.evaluation.retrieval`; a directory is read as a BEIR set (`bench.evaluation.beir`). `--out`
writes summary.json (schema columns plus per-set averages) and per_setting.parquet;
`--export-beir` writes each chosen setting as BEIR files plus a TREC run that trec_eval
scores exactly as we do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from bench.evaluation.beir import evaluate_beir, export_lareqa, load_beir, write_beir, write_run
from bench.errors import BenchError, DataError, exit_on_user_error
from bench.eval_config import EVAL_SET_NAMES, EvalConfig
from bench.evaluation.lexical import LexicalEncoder
from bench.results.store import ensure_writable_dir
from bench.evaluation.retrieval import evaluate, load_eval_set

DEFAULT = EvalConfig()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__.splitlines()[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--encoder", type=Path, help="directory written by TextEncoder.save")
    model.add_argument("--lexical", action="store_true", help="the hashed character n-gram baseline")
    parser.add_argument("--dataset", action="append", help=f"{' | '.join(EVAL_SET_NAMES)} | BEIR directory "
                        f"(repeatable; default {' '.join(DEFAULT.datasets)})")
    parser.add_argument("--languages", help="comma-separated codes to evaluate (default: all of each set)")
    parser.add_argument("--seen-languages", default="", help="comma-separated training languages, marked in the table")
    parser.add_argument("--heldout-fraction", type=float, default=0.25, help="must match the training run's data.heldout_fraction")
    parser.add_argument("--batch-size", type=int, default=DEFAULT.batch_size)
    parser.add_argument("--max-length", type=int, help="override the encoder's max_length")
    parser.add_argument("--query-chunk", type=int, default=DEFAULT.query_chunk)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="write summary.json and per_setting.parquet here")
    parser.add_argument("--export-beir", type=Path, help="write BEIR files and TREC runs here")
    parser.add_argument("--export-settings", default="multi", help="comma-separated subset of multi,mono,cross")
    parser.add_argument("--run-depth", type=int, default=1000, help="documents per query in the run file; 0 = the whole pool")
    return parser.parse_args(argv)


def split_codes(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(code.strip() for code in value.split(",") if code.strip())


def build_encoder(args: argparse.Namespace):
    if args.lexical:
        if args.max_length is not None:
            raise BenchError("--max-length applies to --encoder, not --lexical")
        return LexicalEncoder()
    from bench.evaluation.encode import TextEncoder  # imports transformers (seconds): only when a model is evaluated

    encoder = TextEncoder.load(args.encoder)
    return encoder.with_max_length(args.max_length) if args.max_length else encoder


def check_args(args: argparse.Namespace) -> None:
    for key in ("batch_size", "query_chunk"):
        if getattr(args, key) < 1:
            raise BenchError(f"--{key.replace('_', '-')} must be a positive integer, got {getattr(args, key)}")
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be a positive integer, got {args.threads}")
    if args.run_depth < 0:
        raise BenchError(f"--run-depth must be >= 0 (0: the whole pool), got {args.run_depth}")
    kinds = split_codes(args.export_settings) or ()
    if not kinds or any(k not in ("multi", "mono", "cross") for k in kinds):
        raise BenchError(f"--export-settings must be a comma-separated subset of multi,mono,cross, got {args.export_settings!r}")
    if args.encoder is not None and not args.encoder.is_dir():
        raise DataError(f"encoder directory not found: {args.encoder}")


def resolve_datasets(names: list[str]) -> tuple[list[str], list[Path]]:
    """LAReQA set names and BEIR directories; anything else is a one-line error."""
    lareqa, beir = [], []
    for name in names:
        if name in EVAL_SET_NAMES:
            lareqa.append(name)
        elif Path(name).is_dir():
            beir.append(Path(name))
        elif "/" in name or Path(name).suffix or Path(name).exists():
            raise DataError(f"dataset path not found (or not a directory): {name}")
        else:
            raise BenchError(f"unknown dataset {name!r}; choose {', '.join(EVAL_SET_NAMES)} or a BEIR directory")
    return lareqa, beir


def print_tables(summaries: dict[str, dict], beir_rows: list[dict]) -> None:
    if summaries:
        table = pd.DataFrame(summaries).T[["map_mono", "map_cross", "map_multi", "rank_distance", "ndcg10_multi", "r1_multi"]]
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if beir_rows:
        print(pd.DataFrame(beir_rows).set_index("dataset").to_string(float_format=lambda v: f"{v:.4f}"))


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    lareqa_names, beir_dirs = resolve_datasets(args.dataset or list(DEFAULT.datasets))
    languages = split_codes(args.languages)
    eval_sets = [load_eval_set(name, languages, args.heldout_fraction) for name in lareqa_names]
    beir_sets = [load_beir(d) for d in beir_dirs]
    for directory in (args.out, args.export_beir):
        if directory is not None:
            ensure_writable_dir(directory)
    encoder = build_encoder(args)
    kinds = split_codes(args.export_settings)

    def export(eval_set, encoded) -> None:
        if args.export_beir is not None:
            export_lareqa(eval_set, encoded, args.export_beir, args.run_depth, kinds)

    result = evaluate(encoder, eval_sets, split_codes(args.seen_languages) or (), args.batch_size, args.query_chunk,
                      on_encoded=export) if eval_sets else None
    beir_rows = []
    for beir in beir_sets:
        summary, per_query = evaluate_beir(encoder, beir, args.batch_size, args.query_chunk)
        beir_rows.append(summary)
        if args.export_beir is not None:
            target = write_beir(beir, args.export_beir / beir.name)
            write_run(target / "runs" / "bench.trec", beir, encoder.encode(list(beir.queries), args.batch_size),
                      encoder.encode(list(beir.docs), args.batch_size), args.run_depth)
    print_tables(result.summaries if result else {}, beir_rows)
    if args.out is not None:
        write_outputs(args, result, beir_rows)
    return 0


def write_outputs(args: argparse.Namespace, result, beir_rows: list[dict]) -> None:
    payload = {
        "encoder": "lexical" if args.lexical else str(args.encoder),
        "summary": result.summary if result else None,
        "sets": result.summaries if result else {},
        "beir": beir_rows,
    }
    (args.out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    if result is not None:
        result.table.to_parquet(args.out / "per_setting.parquet", index=False)
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
