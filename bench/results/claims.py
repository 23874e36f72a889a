"""The pre-registered claims of a quality experiment, decided on every evaluation set.

A claims file (conf/claims/<experiment>.yaml) names the arms (selectors over results.parquet), the
sets, the significance level, the equivalence margin, the bootstrap settings and the claims. Each
claim is tested on each set with the hierarchical paired bootstrap (bench.results.bootstrap):

* difference: a - b, seeds paired over the seeds both arms share;
* extreme: the arm's margin over every other arm (min of the differences for `greater`, max for
  `less`), an intersection-union test: it is beyond 0 only if every pairwise difference is;
* trend: the least-squares slope of the arm means against alpha_of_arm (other arms left out).

Holm's step-down adjustment runs over the whole family of (claim, set) tests, tests that cannot run
yet counting with p = 1 so a partial experiment is never judged more leniently than the full one. A
directional claim is confirmed when its adjusted one-sided p in the expected direction is below the
significance level, refuted when the one in the opposite direction is; an equivalence claim is
confirmed by TOST within the margin and refuted when the difference lies significantly outside it.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from bench.errors import ConfigError, DataError
from bench.results.bootstrap import (
    METRICS, BootstrapResult, check_per_query, difference, extreme, hierarchical_bootstrap, slope, stack_cells,
)  # fmt: skip
from bench.results.store import PER_QUERY_DIR, load_results

KINDS = ("difference", "extreme", "trend")
EXPECTS = ("greater", "less", "equivalent")
CONFIRMED, REFUTED, UNRESOLVED, NOT_RUN = "confirmed", "refuted", "unresolved", "not run"
TOO_FEW = "too few seeds"
MIN_SEEDS = 2  # per arm: resampling a single seed cannot see seed-to-seed variance, so its interval is too narrow
TOP_KEYS = {"experiment", "results_dir", "arms", "alpha_of_arm", "sets", "significance", "equivalence_margin",
            "bootstrap", "claims", "targets", "output"}  # fmt: skip
CLAIM_KEYS = {"id", "text", "kind", "a", "b", "arm", "over", "metric", "expect", "paper", "exploratory"}
COLUMNS = ["id", "set", "text", "metric", "kind", "expect", "exploratory", "estimate", "ci_low", "ci_high", "se",
           "p_raw", "p_holm", "p_refute_raw", "p_refute_holm", "min_detectable", "n_seeds", "verdict", "paper",
           "sign_agrees_with_primary"]  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim. `arms`: (a, b) for a difference, (arm, *others) for an extreme, the
    alpha arms in alpha order for a trend."""

    id: str
    kind: str
    metric: str
    expect: str
    arms: tuple[str, ...]
    text: str = ""
    paper: str = ""
    exploratory: bool = False


@dataclass(frozen=True)
class Claims:
    """A validated claims file."""

    experiment: str
    results_dir: Path | None
    arms: dict[str, dict]
    alpha_of_arm: dict[str, float]
    sets: dict[str, str]  # set name -> display name; the first is primary
    significance: float
    margin: float
    replicates: int
    seed: int
    claims: tuple[Claim, ...]
    targets: dict[str, tuple[float, ...]] = field(default_factory=dict)  # metric -> the cost-to-target ladder
    output: str = "verdict"  # the verdict files' name in the results directory (several claims files may judge one)

    @property
    def primary_set(self) -> str:
        return next(iter(self.sets))


def load_claims(path: Path) -> Claims:
    """Read and validate a claims file; every problem is a one-line ConfigError naming the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({type(exc).__name__})") from None
    return parse_claims(raw, str(path))


def parse_claims(raw: object, source: str = "claims") -> Claims:
    """Validate the loaded YAML of a claims file into typed Claims."""

    def fail(key: str, problem: str):
        raise ConfigError(f"{source}: {key}: {problem}")

    def mapping(value, key: str) -> dict:
        if not isinstance(value, dict) or not value:
            fail(key, "must be a non-empty mapping")
        return value

    def number(key: str, value, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            fail(key, f"must be a number in ({low:g}, {high:g}), got {value!r}")
        return float(value)

    raw = mapping(raw, "top level")
    if unknown := sorted(set(raw) - TOP_KEYS):
        fail(unknown[0], f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    for key in ("experiment", "arms", "sets", "claims"):
        if key not in raw:
            fail(key, "missing")
    arms = mapping(raw["arms"], "arms")
    for label, selector in arms.items():
        mapping(selector, f"arms.{label}")
    alpha_of_arm = mapping(raw["alpha_of_arm"], "alpha_of_arm") if raw.get("alpha_of_arm") else {}
    for label, alpha in alpha_of_arm.items():
        if label not in arms:
            fail(f"alpha_of_arm.{label}", f"unknown arm (arms: {', '.join(arms)})")
        number(f"alpha_of_arm.{label}", alpha, -math.inf, math.inf)
    boot = mapping(raw["bootstrap"], "bootstrap") if raw.get("bootstrap") else {}
    if unknown := sorted(set(boot) - {"replicates", "seed"}):
        fail(f"bootstrap.{unknown[0]}", "unknown key (known: replicates, seed)")
    replicates, seed = boot.get("replicates", 4000), boot.get("seed", 0)
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 100:
        fail("bootstrap.replicates", f"must be an integer >= 100, got {replicates!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        fail("bootstrap.seed", f"must be a non-negative integer, got {seed!r}")
    if not isinstance(raw["claims"], list) or not raw["claims"]:
        fail("claims", "must be a non-empty list")
    claims, seen = [], set()
    for i, entry in enumerate(raw["claims"]):
        claim = parse_claim(mapping(entry, f"claims[{i}]"), i, arms, alpha_of_arm, fail)
        if claim.id in seen:
            fail(f"claims[{claim.id}].id", "duplicate id")
        seen.add(claim.id)
        claims.append(claim)
    margin = raw.get("equivalence_margin")
    if margin is None and any(c.expect == "equivalent" for c in claims):
        fail("equivalence_margin", "missing, and a claim expects equivalence")
    targets = mapping(raw["targets"], "targets") if raw.get("targets") else {}
    for metric, ladder in targets.items():
        if metric not in METRICS:
            fail(f"targets.{metric}", f"unknown metric (one of {', '.join(METRICS)})")
        if not isinstance(ladder, list) or not ladder or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in ladder):
            fail(f"targets.{metric}", f"must be a non-empty list of numbers, got {ladder!r}")
    output = raw.get("output", "verdict")
    if not isinstance(output, str) or not output or "/" in output:
        fail("output", f"must be a file name without a directory, got {output!r}")
    results_dir = raw.get("results_dir")
    return Claims(
        experiment=str(raw["experiment"]), results_dir=Path(results_dir) if results_dir else None,
        arms={str(k): dict(v) for k, v in arms.items()}, alpha_of_arm={k: float(v) for k, v in alpha_of_arm.items()},
        sets={str(k): str(v) for k, v in mapping(raw["sets"], "sets").items()},
        significance=number("significance", raw.get("significance", 0.05), 0, 1),
        margin=number("equivalence_margin", margin, 0, math.inf) if margin is not None else math.nan,
        replicates=replicates, seed=seed, claims=tuple(claims),
        targets={metric: tuple(float(v) for v in ladder) for metric, ladder in targets.items()}, output=output,
    )  # fmt: skip


def parse_claim(entry: dict, index: int, arms: dict, alpha_of_arm: dict, fail) -> Claim:
    """One entry of `claims`, its arms resolved (see Claim.arms)."""
    if entry.get("id") in (None, ""):
        fail(f"claims[{index}].id", "missing")
    name = f"claims[{entry['id']}]"
    if unknown := sorted(set(entry) - CLAIM_KEYS):
        fail(f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(CLAIM_KEYS))})")
    for key, allowed in (("kind", KINDS), ("metric", METRICS), ("expect", EXPECTS)):
        if entry.get(key) not in allowed:
            fail(f"{name}.{key}", f"unknown {key} {entry.get(key)!r} (one of {', '.join(allowed)})")
    if not isinstance(entry.get("exploratory", False), bool):
        fail(f"{name}.exploratory", f"must be true or false, got {entry['exploratory']!r}")
    kind = entry["kind"]
    if entry["expect"] == "equivalent" and kind != "difference":
        fail(f"{name}.expect", "equivalent applies to kind difference only (the margin is in metric units)")
    needed = {"difference": ("a", "b"), "extreme": ("arm",), "trend": ()}[kind]
    for key in needed:
        if not isinstance(entry.get(key), str) or entry[key] not in arms:
            fail(f"{name}.{key}", f"unknown arm {entry.get(key)!r} (arms: {', '.join(arms)})")
    if kind == "difference":
        if entry["a"] == entry["b"]:
            fail(f"{name}.b", "must differ from a")
        chosen = (entry["a"], entry["b"])
    elif kind == "extreme":
        over = entry.get("over", [label for label in arms if label != entry["arm"]])  # default: every other arm
        if not isinstance(over, list) or any(label not in arms or label == entry["arm"] for label in over):
            fail(f"{name}.over", f"must list other arms (arms: {', '.join(arms)}), got {over!r}")
        chosen = (entry["arm"], *over)
        if len(chosen) < 2:
            fail(f"{name}.arm", "an extreme needs at least two arms")
    else:
        chosen = tuple(sorted(alpha_of_arm, key=alpha_of_arm.get))
        if len({alpha_of_arm[label] for label in chosen}) < 2:
            fail("alpha_of_arm", f"{name} is a trend and needs at least two distinct alphas")
    return Claim(id=str(entry["id"]), kind=kind, metric=entry["metric"], expect=entry["expect"],
                 arms=tuple(chosen), text=str(entry.get("text") or ""), paper=str(entry.get("paper") or ""),
                 exploratory=entry.get("exploratory", False))  # fmt: skip


@dataclass(frozen=True)
class ArmRuns:
    """One arm's ok runs that have per-query results: their seeds and per-query frames, in seed order."""

    seeds: tuple[int, ...] = ()
    frames: tuple[pd.DataFrame, ...] = ()

    def on_set(self, name: str) -> ArmRuns:
        """The runs evaluated on set `name`, their frames cut to its rows."""
        cut = [(seed, frame[frame["set"] == name]) for seed, frame in zip(self.seeds, self.frames)]
        kept = [(seed, frame) for seed, frame in cut if len(frame)]
        return ArmRuns(tuple(s for s, _ in kept), tuple(f for _, f in kept))

    def restrict(self, seeds: list[int]) -> ArmRuns:
        """The runs of `seeds`, in that order (what pairs two arms seed by seed)."""
        index = {seed: frame for seed, frame in zip(self.seeds, self.frames)}
        return ArmRuns(tuple(seeds), tuple(index[seed] for seed in seeds))


def matches(values: pd.Series, wanted) -> pd.Series:
    """Which values equal a selector's value: None matches missing, numbers match within float noise."""
    if wanted is None:
        return values.isna()
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        return pd.Series(np.isclose(numbers, float(wanted), rtol=0, atol=1e-9), index=values.index)
    return values.astype(str) == str(wanted)


def strategy_parameter(text: object, key: str):
    """One parameter from a row's strategy_params JSON (None where the row has none)."""
    params = json.loads(text) if isinstance(text, str) and text else None
    return params.get(key) if isinstance(params, dict) else None


def select_runs(results: pd.DataFrame, selector: Mapping) -> pd.DataFrame:
    """The ok rows that match every key of the selector: a results column, else a strategy parameter."""
    rows = results[results["status"] == "ok"]
    for key, wanted in selector.items():
        if key in rows.columns:
            values = rows[key]
        else:
            params = rows.get("strategy_params", pd.Series(None, index=rows.index, dtype=object))
            values = params.map(lambda text: strategy_parameter(text, key))
        rows = rows[matches(values, wanted).to_numpy()]
    return rows


def load_arms(claims: Claims, results_dir: Path) -> dict[str, ArmRuns]:
    """Every arm's ok runs with their per-query frames; runs without a per-query file are left out, with a warning."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"results_dir: {results_dir} does not exist")
    results = load_results(results_dir)
    arms = {}
    for label, selector in claims.arms.items():
        rows = select_runs(results, selector)
        if rows["seed"].isna().any() or rows["seed"].duplicated().any():
            raise ConfigError(f"arms.{label}: selects runs with a missing or repeated seed; narrow the selector")
        runs = []
        for row in rows.sort_values("seed").itertuples():
            path = results_dir / PER_QUERY_DIR / f"{row.run_id}.parquet"
            if not path.is_file():
                warnings.warn(f"arm {label}: ok run {row.run_id} has no {path}; left out", stacklevel=2)
                continue
            try:
                frame = pd.read_parquet(path)
            except Exception as exc:
                raise DataError(f"{path} is unreadable ({type(exc).__name__})") from None
            runs.append((int(row.seed), check_per_query(frame, str(path))))
        arms[label] = ArmRuns(tuple(s for s, _ in runs), tuple(f for _, f in runs))
    return arms


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN (a test not run) counts as p = 1 and stays NaN."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(np.where(np.isnan(p), 1.0, p), kind="stable")
    m = len(p)
    scaled = np.where(np.isnan(p[order]), 1.0, p[order]) * (m - np.arange(m))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return np.where(np.isnan(p), np.nan, adjusted)


def statistic_of(claims: Claims, claim: Claim):
    """The bootstrap statistic of a claim's arm means."""
    if claim.kind == "difference":
        return difference
    if claim.kind == "extreme":
        return extreme(claim.expect)
    return slope([claims.alpha_of_arm[label] for label in claim.arms])


def p_values(result: BootstrapResult, expect: str, margin: float) -> tuple[float, float]:
    """(p for confirming, p for refuting) the claim, unadjusted."""
    if expect == "greater":
        return result.p_greater(), result.p_less()
    if expect == "less":
        return result.p_less(), result.p_greater()
    return result.p_equivalent(margin), result.p_outside(margin)


def evaluate_one(claims: Claims, claim: Claim, set_name: str, arms: Mapping[str, ArmRuns]) -> dict:
    """One (claim, set) test: the estimate, its interval and unadjusted p's; NaN where an arm has no runs.

    A difference pairs its arms on the seeds both have (runs of other seeds are left out, as n_seeds
    shows); only when they share none are their seeds resampled independently.
    """
    runs = [arms.get(label, ArmRuns()).on_set(set_name) for label in claim.arms]
    shared = sorted(set.intersection(*(set(r.seeds) for r in runs)))
    paired = claim.kind == "difference" and bool(shared)
    if paired:
        runs = [r.restrict(shared) for r in runs]
    row = {"id": claim.id, "set": set_name, "text": claim.text, "metric": claim.metric, "kind": claim.kind,
           "expect": claim.expect, "exploratory": claim.exploratory, "paper": claim.paper,
           "n_seeds": "/".join(str(len(r.seeds)) for r in runs)}  # fmt: skip
    if not all(r.seeds for r in runs):
        return row | dict.fromkeys(["estimate", "ci_low", "ci_high", "se", "min_detectable", "p_raw", "p_refute_raw"],
                                   math.nan)  # fmt: skip
    # One stream per test, from the configured seed and the test's name: adding or reordering claims
    # leaves every other test's replicates unchanged.
    rng = np.random.default_rng([claims.seed, zlib.crc32(f"{claim.id}\t{set_name}".encode())])
    stack = stack_cells([r.frames for r in runs], claim.metric)
    result = hierarchical_bootstrap(stack, statistic_of(claims, claim), replicates=claims.replicates, rng=rng,
                                    paired_seeds=paired)  # fmt: skip
    p_confirm, p_refute = p_values(result, claim.expect, claims.margin)
    if min(len(r.seeds) for r in runs) < MIN_SEEDS:  # shown, never judged: counts as p = 1 in the family
        p_confirm = p_refute = math.nan
        row["too_few_seeds"] = True
    low, high = result.ci
    return row | {"estimate": result.estimate, "ci_low": low, "ci_high": high, "se": result.se,
                  "min_detectable": result.min_detectable, "p_raw": p_confirm, "p_refute_raw": p_refute}  # fmt: skip


def verdict(p_confirm: float, p_refute: float, significance: float) -> str:
    if math.isnan(p_confirm):
        return NOT_RUN
    if p_confirm < significance:
        return CONFIRMED
    return REFUTED if p_refute < significance else UNRESOLVED


def sign_agreement(frame: pd.DataFrame, primary: str) -> list:
    """Per row: does the estimate's sign match the same claim's on the primary set (None on it, or if unknown)."""
    on_primary = frame[frame["set"] == primary].set_index("id")["estimate"]
    out = []
    for row in frame.itertuples():
        first = on_primary.get(row.id, math.nan)
        known = row.set != primary and np.isfinite(first) and np.isfinite(row.estimate)
        out.append(bool(np.sign(row.estimate) == np.sign(first)) if known else None)
    return out


def evaluate_claims(claims: Claims, arms: Mapping[str, ArmRuns]) -> pd.DataFrame:
    """Every claim on every set, Holm-adjusted over the family, with verdicts: one row per (claim, set)."""
    frame = pd.DataFrame([evaluate_one(claims, c, s, arms) for c in claims.claims for s in claims.sets])
    frame["p_holm"] = holm(frame["p_raw"].to_numpy())
    frame["p_refute_holm"] = holm(frame["p_refute_raw"].to_numpy())
    frame["verdict"] = [verdict(p, q, claims.significance) for p, q in zip(frame["p_holm"], frame["p_refute_holm"])]
    if "too_few_seeds" in frame:
        frame.loc[frame["too_few_seeds"].fillna(False).astype(bool), "verdict"] = TOO_FEW
    frame["sign_agrees_with_primary"] = pd.Series(sign_agreement(frame, claims.primary_set), dtype=object)
    return frame[COLUMNS]


def evaluate(claims: Claims, results_dir: Path) -> pd.DataFrame:
    """evaluate_claims on the runs of a results directory."""
    return evaluate_claims(claims, load_arms(claims, results_dir))


def expectation(claims: Claims, claim: Claim) -> str:
    """The claim as an inequality, e.g. `hybrid-0.5 − crosslingual > 0`."""
    sign = {"greater": "> 0", "less": "< 0"}
    if claim.kind == "difference":
        if claim.expect == "equivalent":
            return f"|{claim.arms[0]} − {claim.arms[1]}| < {claims.margin:g}"
        return f"{claim.arms[0]} − {claim.arms[1]} {sign[claim.expect]}"
    if claim.kind == "extreme":
        return f"{claim.arms[0]} {'largest' if claim.expect == 'greater' else 'smallest'}"
    return f"slope over alpha {sign[claim.expect]}"


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
    rows = []
    for claim in claims.claims:
        label = " ".join([f"**{claim.id}**"] + ["(exploratory)"] * claim.exploratory + [claim.text] * bool(claim.text))
        row = [label, claim.metric, expectation(claims, claim), claim.paper or "–"]
        for name in claims.sets:
            (test,) = frame[(frame["id"] == claim.id) & (frame["set"] == name)].itertuples()
            row += [interval(test), verdict_cell(test)]
        rows.append(row)
    return markdown_table(header, rows)
