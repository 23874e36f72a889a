"""`python -m bench.evaluate`: retrieval quality of a saved encoder, a pretrained model zero-shot, or the lexical baseline.

    python -m bench.evaluate --encoder results/x/encoders/ID --out results/eval/ID
    python -m bench.evaluate model=me5-small eval=full --out results/me5-small-zeroshot
    python -m bench.evaluate --lexical eval.sets=[heldout,mlqa-r,all] --out results/lexical
    python -m bench.evaluate --lexical --beir path/to/beir-dir
    python -m bench.evaluate --lexical eval.languages=[en,de,zh] --export-beir exports --export-settings multi,mono

Overrides are the run's (`data=`, `eval.*`, `model=`, `train.threads`), so an evaluation and a run
evaluate the same sets by default: `eval.sets` of the run's data (and `eval.external` zero-shot sets)
get the LAReQA mono / cross / multi protocol of `bench.evaluation.retrieval`; `--beir DIR` adds BEIR
sets (`bench.evaluation.beir`). Without `--encoder` or `--lexical` the `model=` preset is evaluated
zero-shot with its own tokenizer, pooling and prefixes (it must have pretrained weights). `--out`
writes summary.json and per_setting.parquet, each with its provenance sidecar (`<file>.provenance.json`:
commit, tree state, CPU and its flags, calibration, the exact command); `--export-beir` writes each chosen
setting as BEIR files plus a TREC run of the whole pool that trec_eval scores exactly as we do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from bench.config import RunConfig, plan_runs
from bench.core.metric_names import EVAL_SUMMARY_METRICS
from bench.errors import BenchError, ConfigError, DataError, exit_on_user_error
from bench.evaluation.beir import SETTINGS, evaluate_beir, export_lareqa, load_beir, write_beir, write_run
from bench.evaluation.encode import TextEncoder
from bench.evaluation.lexical import LexicalEncoder
from bench.evaluation.retrieval import evaluate
from bench.evaluation.sets import eval_sets_for
from bench.measure.evidence import command_line, evidence_header
from bench.measure.sidecar import write_provenance
from bench.results.store import ensure_writable_dir
from bench.stages import zero_shot_encoder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="overrides as for python -m bench.run (data=, eval.*, model=, train.threads)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--encoder", type=Path, help="directory written by a run with results.save_encoder=true")
    source.add_argument("--lexical", action="store_true", help="the hashed character n-gram baseline (no training)")
    parser.add_argument("--beir", type=Path, action="append", default=[], help="a BEIR directory to evaluate too (repeatable)")
    parser.add_argument("--seen-languages", default="", help="comma-separated training languages, marked in the table")
    parser.add_argument("--out", type=Path, help="write summary.json and per_setting.parquet here")
    parser.add_argument("--export-beir", type=Path, help="write BEIR files and TREC runs here")
    parser.add_argument("--export-settings", default="multi", help=f"comma-separated subset of {','.join(SETTINGS)}")
    parser.add_argument("--run-depth", type=int, default=0, help="documents per query in TREC runs; 0 (default) = the whole pool")
    return parser.parse_args(argv)


def split_codes(value: str) -> tuple[str, ...]:
    return tuple(code.strip() for code in value.split(",") if code.strip())


def check_args(args: argparse.Namespace) -> None:
    if args.run_depth < 0:
        raise BenchError(f"--run-depth must be >= 0 (0: the whole pool), got {args.run_depth}")
    kinds = split_codes(args.export_settings)
    if not kinds or any(k not in SETTINGS for k in kinds):
        raise BenchError(f"--export-settings must be a comma-separated subset of {','.join(SETTINGS)}, got {args.export_settings!r}")
    if args.encoder is not None and not args.encoder.is_dir():
        raise DataError(f"encoder directory not found: {args.encoder}")
    for directory in args.beir:
        if not directory.is_dir():
            raise DataError(f"BEIR directory not found: {directory}")


def build_encoder(args: argparse.Namespace, cfg: RunConfig):
    if args.lexical:
        return LexicalEncoder()
    if args.encoder is not None:
        saved = TextEncoder.load(args.encoder)  # its own length unless eval.max_length overrides it
        return TextEncoder(saved.model, saved.tokenizer, saved.pooling, cfg.eval.max_length or saved.max_length,
                           cfg.eval.precision)
    if not cfg.model.pretrained:
        raise ConfigError(f"model={cfg.model.name} has no pretrained weights to evaluate zero-shot; "
                          "evaluate a trained encoder with --encoder DIR, or pick a pretrained model (model=me5-small)")
    return zero_shot_encoder(cfg)


def print_tables(summaries: dict[str, dict], beir_rows: list[dict]) -> None:
    if summaries:
        print(pd.DataFrame(summaries).T[list(EVAL_SUMMARY_METRICS)].to_string(float_format=lambda v: f"{v:.4f}"))
    if beir_rows:
        print(pd.DataFrame(beir_rows).set_index("dataset").to_string(float_format=lambda v: f"{v:.4f}"))


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_args(args)
    (planned,) = plan_runs("config", args.overrides, sweep=False)
    cfg = planned.config
    torch.set_num_threads(cfg.train.threads)
    command = command_line(sys.argv[1:] if argv is None else argv, program="python -m bench.evaluate")
    # Calibrated before the evaluation is timed (eval_s), and only when something is written.
    header = evidence_header(command, cfg.train.threads) if args.out is not None else None
    if cfg.data.synthetic_languages is not None:
        raise ConfigError("data=synthetic has no evaluation set (its languages are not real)")
    eval_sets = eval_sets_for(cfg.eval, cfg.data) if cfg.eval.enabled else []
    beir_sets = [load_beir(d) for d in args.beir]
    for directory in (args.out, args.export_beir):
        if directory is not None:
            ensure_writable_dir(directory)
    encoder = build_encoder(args, cfg)
    kinds = split_codes(args.export_settings)

    def export(eval_set, encoded) -> None:
        if args.export_beir is not None:
            export_lareqa(eval_set, encoded, args.export_beir, args.run_depth, kinds)

    result = evaluate(encoder, eval_sets, split_codes(args.seen_languages), cfg.eval.batch_size, cfg.eval.query_chunk,
                      on_encoded=export) if eval_sets else None  # fmt: skip
    beir_rows = []
    for beir in beir_sets:
        summary, _ = evaluate_beir(encoder, beir, cfg.eval.batch_size, cfg.eval.query_chunk)
        beir_rows.append(summary)
        if args.export_beir is not None:
            target = write_beir(beir, args.export_beir / beir.name)
            write_run(target / "runs" / "bench.trec", beir, encoder.encode(list(beir.queries), cfg.eval.batch_size, kind="query"),
                      encoder.encode(list(beir.docs), cfg.eval.batch_size, kind="passage"), args.run_depth)  # fmt: skip
    print_tables(result.summaries if result else {}, beir_rows)
    if args.out is not None:
        write_outputs(args, cfg, result, beir_rows, header)
    return 0


def write_outputs(args: argparse.Namespace, cfg: RunConfig, result, beir_rows: list[dict], header: dict) -> None:
    source = "lexical" if args.lexical else str(args.encoder) if args.encoder else f"model={cfg.model.name} (zero-shot)"
    payload = {
        "encoder": source,
        "command": header["command"],
        "eval_precision": cfg.eval.precision,
        "summary": result.summary if result else None,
        "eval_s": result.seconds if result else None,
        "sets": result.summaries if result else {},
        "beir": beir_rows,
    }
    (args.out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    write_provenance(args.out / "summary.json", header)
    if result is not None:
        result.table.to_parquet(args.out / "per_setting.parquet", index=False)
        write_provenance(args.out / "per_setting.parquet", header)
    print(f"wrote {args.out / 'summary.json'} and per_setting.parquet, each with its provenance")


if __name__ == "__main__":
    raise SystemExit(main())
