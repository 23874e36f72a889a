"""Scaling curves of a results directory: `python -m bench.plot RESULTS_DIR`.

Reads RESULTS_DIR/results.parquet and writes one PNG and one SVG per figure under
RESULTS_DIR/plots/, and what each added language costs to RESULTS_DIR/growth_fit.parquet
(bench.results.figures, bench.results.growth). Every sweep calls `plot_results` at its end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import exit_on_user_error
from bench.results.figures import PLOTS_DIR, plot_results
from bench.results.growth import GROWTH_FILE


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="directory holding results.parquet")
    args = parser.parse_args(argv)
    paths = plot_results(args.results_dir)
    if not paths:
        print(f"no usable runs in {args.results_dir}; wrote only {GROWTH_FILE} (empty)")
    else:
        print(f"wrote {len(paths) // 2} figures (PNG + SVG) to {args.results_dir / PLOTS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
