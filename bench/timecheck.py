"""Did the step time regress? `python -m bench.timecheck BASE_DIR NEW_DIR` (bench.results.time_compare).

Compares the per-step times of the runs both results directories measured (matched by configuration),
each normalised by its own machine calibration, and prints one verdict line: slower, faster or no
change, with its interval and the smallest slowdown the noise could have shown. Exit 1 when slower.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import exit_on_user_error
from bench.results.time_compare import compare_dirs, describe


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timecheck", description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="results directory measured before the change")
    parser.add_argument("new", type=Path, help="results directory measured after it")
    parser.add_argument("--replicates", type=int, default=2000)
    args = parser.parse_args(argv)
    result = compare_dirs(args.base, args.new, args.replicates)
    print(describe(result, args.base, args.new))
    return 1 if result.verdict == "slower" else 0


if __name__ == "__main__":
    raise SystemExit(main())
