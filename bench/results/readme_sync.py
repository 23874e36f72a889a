"""Numbers in the README that are generated, never typed: blocks between markers, rewritten from committed files.

A block is `<!-- generated:NAME -->` ... `<!-- /generated:NAME -->` in README.md. Whatever writes the
block (e.g. `python -m bench.verdict CLAIMS --readme README.md`) computes its text from committed
results; tests/results/test_readme_sync.py regenerates every block and fails when the README disagrees, so an
edited cell, or results that changed without the README, cannot go unnoticed.
"""

from __future__ import annotations

import re

from bench.errors import DataError


def markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"


def block_names(text: str) -> list[str]:
    """The names of the generated blocks in `text`, in order."""
    return re.findall(r"<!-- generated:([\w.:-]+) -->", text)


def read_block(text: str, name: str) -> str:
    """The content between the block's markers (without the blank lines around it)."""
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise DataError(f"README: the generated block {name!r} needs exactly one {start} before one {end}")
    return text[text.index(start) + len(start) : text.index(end)].strip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with the block's content replaced by `content`."""
    read_block(text, name)  # validates the markers
    start, end = markers(name)
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{content.strip()}\n{end}{after}"
