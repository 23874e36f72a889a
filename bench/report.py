"""A Markdown report of a results directory: `python -m bench.report RESULTS_DIR [--replot]`.

Writes RESULTS_DIR/report.md (bench.results.markdown): what ran and where, one table per reported
metric of the catalogue, what each added language costs (bench.results.growth), the unsuccessful runs
and the figures; `--readme FILE...` also rewrites those documents' blocks of this directory (`growth:NAME`,
`table:NAME:COLUMN`, NAME the directory's name), which tests/results/test_readme_sync.py checks. A directory
of test-tier summaries (`python -m pytest --tier-report results/tests/fast.json`) has no report, only its
block `tiers:NAME` (bench.results.tiers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import exit_on_user_error
from bench.results.markdown import document_blocks, write_report
from bench.results.readme_sync import block_names, replace_block
from bench.results.tiers import holds_tiers, tier_blocks


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="directory holding results.parquet")
    parser.add_argument("--replot", action="store_true", help="redraw the figures even if they exist")
    parser.add_argument("--readme", type=Path, nargs="+", default=[], metavar="FILE",
                        help="also rewrite these documents' blocks of this results directory (growth:NAME, table:NAME:COLUMN)")
    args = parser.parse_args(argv)
    if holds_tiers(args.results_dir):  # test-tier summaries, not a sweep's rows: a block, no report
        blocks = tier_blocks(args.results_dir)
    else:
        print(f"wrote {write_report(args.results_dir, replot=args.replot)}")
        blocks = document_blocks(args.results_dir)
    for document in args.readme:
        text = document.read_text()
        names = [name for name in block_names(text) if name in blocks]
        for name in names:
            text = replace_block(text, name, blocks[name]())
        document.write_text(text)
        print(f"wrote {document} ({len(names)} blocks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
