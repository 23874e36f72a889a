"""A Markdown report of a results directory: `python -m bench.report RESULTS_DIR [--replot]`.

Writes RESULTS_DIR/report.md (bench.results.markdown): what ran and where, one table per reported
metric of the catalogue, the fitted scaling exponents, the unsuccessful runs and the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import exit_on_user_error
from bench.results.markdown import write_report


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="directory holding results.parquet")
    parser.add_argument("--replot", action="store_true", help="redraw the figures even if they exist")
    args = parser.parse_args(argv)
    print(f"wrote {write_report(args.results_dir, replot=args.replot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
