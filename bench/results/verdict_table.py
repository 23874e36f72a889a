"""The verdict table of a claims family (bench.results.claims) in Markdown: per claim, the paper's value, then per set
the estimate with its 95% interval and the verdict. Reads tables only (no torch), like every report of a verdict."""

from __future__ import annotations

import math

import pandas as pd

from bench.results.claims import CONFIRMED, Claim, Claims


def expectation(claims: Claims, claim: Claim) -> str:
    """The claim as an inequality, e.g. `hybrid-0.5 − crosslingual > 0`, with its L when it has one."""
    at = "" if claim.at_languages is None else f" at L = {claim.at_languages}"
    return inequality(claims, claim) + at


def inequality(claims: Claims, claim: Claim) -> str:
    sign = {"greater": "> 0", "less": "< 0"}
    if claim.kind == "difference":
        if claim.expect == "equivalent":
            return f"|{claim.arms[0]} − {claim.arms[1]}| < {claims.margin:g}"
        return f"{claim.arms[0]} − {claim.arms[1]} {sign[claim.expect]}"
    if claim.kind == "extreme":
        return f"{claim.arms[0]} {'largest' if claim.expect == 'greater' else 'smallest'}"
    if claim.along == "languages":
        return f"slope over L of {' − '.join(claim.arms)} {sign[claim.expect]}"
    return f"slope over alpha {sign[claim.expect]}"


def metric_cell(claim: Claim) -> str:
    """The metric, and which languages' cells it reads when not all of them."""
    return claim.metric if claim.scope == "all" else f"{claim.metric}, {claim.scope} languages"


def interval(row) -> str:
    if math.isnan(row.estimate):
        return f"– ({row.n_seeds} seeds)"
    return f"{row.estimate:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (bench.results.markdown has one too, but importing it loads torch)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", "\\|") for cell in line) + " |" for line in lines)


def verdict_cell(test) -> str:
    """A test's verdict, in bold when confirmed, noting whether its sign agrees with the primary set's."""
    text = f"**{test.verdict}**" if test.verdict == CONFIRMED else test.verdict
    return text + {True: " (sign agrees)", False: " (sign differs)"}.get(test.sign_agrees_with_primary, "")


def verdict_markdown(frame: pd.DataFrame, claims: Claims) -> str:
    """The verdict table: per claim, the paper's value, then per set this result with its 95% interval and verdict."""
    header = ["claim", "metric", "expected", "paper"]
    for display in claims.sets.values():
        header += [f"{display}: estimate [95% CI]", f"{display}: verdict"]
    rows, previous = [], None
    for claim in claims.claims:
        first = claim.base_id != previous or not claim.base_id  # a claim made at several L: its text once
        previous = claim.base_id
        words = [f"**{claim.id}**"] + ["(exploratory)"] * claim.exploratory + [claim.text] * bool(claim.text and first)
        label = " ".join(words)
        row = [label, metric_cell(claim), expectation(claims, claim), claim.paper or "–"]
        for name in claims.sets:
            (test,) = frame[(frame["id"] == claim.id) & (frame["set"] == name)].itertuples()
            row += [interval(test), verdict_cell(test)]
        rows.append(row)
    return markdown_table(header, rows)
