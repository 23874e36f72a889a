"""The answer on the first screen: `python -m bench.answer [MEASURED_DIR] [PREDICTED_DIR] [--readme README.md]`.

Draws MEASURED_DIR/plots/answer.png (and .svg): time per step and peak tensor memory against L for every
strategy under a fixed and a growing vocabulary (measured), and GPU memory to 104 languages (predicted,
from PREDICTED_DIR); `--readme FILE` rewrites that file's block `answer` with the table per strategy
(bench.results.answer), with what each strategy buys from the quality experiment (`--quality`, default
results/alpha-frontier). Defaults: results/scaling and results/predict-104, the two experiments behind it;
without the predicted directory, the measured part alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import exit_on_user_error
from bench.results.answer import ANSWER_FIGURE, answer_block, write_answer_figure
from bench.results.figures import PLOTS_DIR
from bench.results.readme_sync import replace_block

BLOCK = "answer"


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.answer", description=__doc__.splitlines()[0])
    parser.add_argument("measured_dir", type=Path, nargs="?", default=Path("results/scaling"))
    parser.add_argument("predicted_dir", type=Path, nargs="?", default=Path("results/predict-104"))
    parser.add_argument("--quality", type=Path, default=Path("results/alpha-frontier"), metavar="DIR",
                        help="the quality experiment whose multilingual mAP the table shows per strategy (skipped if absent)")
    parser.add_argument("--readme", type=Path, nargs="*", default=[], metavar="FILE", help="rewrite these files' block `answer`")
    args = parser.parse_args(argv)
    predicted = args.predicted_dir if args.predicted_dir.is_dir() else None
    quality = args.quality if args.quality.is_dir() else None
    if predicted is None:
        print(f"no {args.predicted_dir}: measured rows only")
    written = write_answer_figure(args.measured_dir, predicted, args.measured_dir / PLOTS_DIR / ANSWER_FIGURE)
    print(f"wrote {written[0]} and {written[1].name}")
    for document in args.readme:
        document.write_text(replace_block(document.read_text(), BLOCK, answer_block(args.measured_dir, predicted, quality)))
        print(f"wrote {document} (block {BLOCK})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
