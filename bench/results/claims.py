"""The pre-registered claims of a quality experiment, decided on every evaluation set.

A claims file (conf/claims/<experiment>.yaml) names the arms (selectors over results.parquet), the
sets, the significance level, the equivalence margin, the bootstrap settings and the claims. Each
claim is tested on each set with the hierarchical paired bootstrap (bench.results.bootstrap):

* difference: a - b, seeds paired over the seeds both arms share;
* extreme: the arm's margin over every other arm (min of the differences for `greater`, max for
  `less`), an intersection-union test: it is beyond 0 only if every pairwise difference is;
* trend: the least-squares slope of the arm means against alpha_of_arm (other arms left out), or, with
  `along: languages`, of one arm's means (or of a - b, paired by seed) against the file's L values.

A file with `languages` (the L of the experiment) judges runs at one L: a claim's `at` (every, one L or
a list) makes it one test per L, named `<id>@L<n>`. A claim's `scope` reads every cell of its metric or
only the trained or untrained languages of each run (bench.results.scope).

Holm's step-down adjustment runs over the whole family of (claim, set) tests, tests that cannot run
yet counting with p = 1 so a partial experiment is never judged more leniently than the full one. A
directional claim is confirmed when its adjusted one-sided p in the expected direction is below the
significance level, refuted when the one in the opposite direction is; an equivalence claim is
confirmed by TOST within the margin and refuted when the difference lies significantly outside it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from bench.errors import ConfigError
from bench.results.arms import ArmRuns, load_arm_runs
from bench.results.bootstrap import (
    METRICS, BootstrapResult, difference, extreme, hierarchical_bootstrap, slope, stack_cells,
)  # fmt: skip
from bench.results.scope import SCOPES

KINDS = ("difference", "extreme", "trend")
EXPECTS = ("greater", "less", "equivalent")
ALONG = ("alpha", "languages")  # a trend's axis
DEFAULTS = {"scope": "all", "along": "alpha"}
EVERY = "every"  # `at: every`: one test at each L of the file's `languages`
CONFIRMED, REFUTED, UNRESOLVED, NOT_RUN = "confirmed", "refuted", "unresolved", "not run"
TOO_FEW = "too few seeds"
MIN_SEEDS = 2  # per arm: resampling a single seed cannot see seed-to-seed variance, so its interval is too narrow
TOP_KEYS = {"experiment", "results_dir", "arms", "alpha_of_arm", "sets", "significance", "equivalence_margin",
            "bootstrap", "claims", "targets", "output", "languages"}  # fmt: skip
CLAIM_KEYS = {"id", "text", "kind", "a", "b", "arm", "over", "metric", "expect", "paper", "exploratory", "at", "scope",
              "along"}  # fmt: skip
COLUMNS = ["id", "set", "text", "metric", "kind", "expect", "exploratory", "estimate", "ci_low", "ci_high", "se",
           "p_raw", "p_holm", "p_refute_raw", "p_refute_holm", "min_detectable", "n_seeds", "verdict", "paper",
           "sign_agrees_with_primary", "base_id", "n_languages", "scope"]  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One pre-registered test. `arms`: (a, b) for a difference, (arm, *others) for an extreme, the alpha arms
    in alpha order for a trend along alpha, (arm,) or (a, b) for a trend along languages."""

    id: str
    kind: str
    metric: str
    expect: str
    arms: tuple[str, ...]
    text: str = ""
    paper: str = ""
    exploratory: bool = False
    at_languages: int | None = None  # the L of the runs it compares (None: every run of its arms)
    scope: str = "all"  # the cells its metric reads: all, or each run's trained / untrained languages only
    along: str = "alpha"  # a trend's axis: alpha (alpha_of_arm) or languages (the claims file's L values)
    base_id: str = ""  # the id in the claims file (`id` adds @L<n> to a claim made at several L)

    @property
    def paired(self) -> bool:
        """Seeds resampled jointly: runs of one seed share their data order, so a difference pairs them (a trend
        over L of a - b too, at every L)."""
        return self.kind == "difference" or (self.along == "languages" and len(self.arms) == 2)


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
    languages: tuple[int, ...] = ()  # the L of the experiment, increasing (none: runs are not told apart by L)

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
    languages = parse_languages(raw.get("languages"), fail)
    claims, seen = [], set()
    for i, entry in enumerate(raw["claims"]):
        for claim in parse_claim(mapping(entry, f"claims[{i}]"), i, arms, alpha_of_arm, languages, fail):
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
        languages=languages,
    )  # fmt: skip


def parse_languages(value, fail) -> tuple[int, ...]:
    """`languages`: the L values of the experiment, increasing (a trend over L is a slope against them)."""
    if value is None:
        return ()
    counts = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not counts or not value or value != sorted(set(value)):
        fail("languages", f"must be a list of increasing positive integers (the L of the experiment), got {value!r}")
    return tuple(value)


def parse_claim(entry: dict, index: int, arms: dict, alpha_of_arm: dict, languages: tuple[int, ...],
                fail) -> list[Claim]:
    """One entry of `claims`, its arms resolved (see Claim.arms): one Claim, or one per L when `at` names several."""
    if entry.get("id") in (None, ""):
        fail(f"claims[{index}].id", "missing")
    name = f"claims[{entry['id']}]"
    if unknown := sorted(set(entry) - CLAIM_KEYS):
        fail(f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(CLAIM_KEYS))})")
    choices = (("kind", KINDS), ("metric", METRICS), ("expect", EXPECTS), ("scope", SCOPES), ("along", ALONG))
    for key, allowed in choices:
        if entry.get(key, DEFAULTS.get(key)) not in allowed:
            fail(f"{name}.{key}", f"unknown {key} {entry.get(key)!r} (one of {', '.join(allowed)})")
    if not isinstance(entry.get("exploratory", False), bool):
        fail(f"{name}.exploratory", f"must be true or false, got {entry['exploratory']!r}")
    kind, along = entry["kind"], entry.get("along", DEFAULTS["along"])
    if entry["expect"] == "equivalent" and kind != "difference":
        fail(f"{name}.expect", "equivalent applies to kind difference only (the margin is in metric units)")
    if along != "alpha" and kind != "trend":
        fail(f"{name}.along", "applies to kind trend only")
    claim = Claim(id=str(entry["id"]), kind=kind, metric=entry["metric"], expect=entry["expect"],
                  arms=claim_arms(entry, name, arms, alpha_of_arm, fail), text=str(entry.get("text") or ""),
                  paper=str(entry.get("paper") or ""), exploratory=entry.get("exploratory", False),
                  scope=entry.get("scope", DEFAULTS["scope"]), along=along, base_id=str(entry["id"]))  # fmt: skip
    levels = claim_levels(entry, name, languages, fail)
    return [replace(claim, id=f"{claim.id}@L{n}", at_languages=n) if n is not None else claim for n in levels]


def claim_arms(entry: dict, name: str, arms: dict, alpha_of_arm: dict, fail) -> tuple[str, ...]:
    """The arms a claim compares, in the order its statistic reads them (Claim.arms)."""
    kind, along = entry["kind"], entry.get("along", DEFAULTS["along"])
    if kind == "trend" and along == "alpha":
        chosen = tuple(sorted(alpha_of_arm, key=alpha_of_arm.get))
        if len({alpha_of_arm[label] for label in chosen}) < 2:
            fail("alpha_of_arm", f"{name} is a trend and needs at least two distinct alphas")
        return chosen
    one_arm = kind == "extreme" or (kind == "trend" and "arm" in entry)
    if one_arm and kind == "trend" and ("a" in entry or "b" in entry):
        fail(f"{name}.arm", "a trend over L follows one arm (arm) or a difference (a, b), not both")
    for key in ("arm",) if one_arm else ("a", "b"):
        if not isinstance(entry.get(key), str) or entry[key] not in arms:
            fail(f"{name}.{key}", f"unknown arm {entry.get(key)!r} (arms: {', '.join(arms)})")
    if not one_arm:
        if entry["a"] == entry["b"]:
            fail(f"{name}.b", "must differ from a")
        return entry["a"], entry["b"]
    if kind == "trend":
        return (entry["arm"],)
    over = entry.get("over", [label for label in arms if label != entry["arm"]])  # default: every other arm
    if not isinstance(over, list) or any(label not in arms or label == entry["arm"] for label in over):
        fail(f"{name}.over", f"must list other arms (arms: {', '.join(arms)}), got {over!r}")
    if not over:
        fail(f"{name}.arm", "an extreme needs at least two arms")
    return entry["arm"], *over


def claim_levels(entry: dict, name: str, languages: tuple[int, ...], fail) -> list[int | None]:
    """The L of each test a claim makes: [None] (every run of its arms, or a trend over all L), else its `at`."""
    at, along = entry.get("at"), entry.get("along", DEFAULTS["along"])
    if not languages:
        for key, used in (("at", at is not None), ("along", along == "languages")):
            if used:
                fail(f"{name}.{key}", "needs the claims file's `languages` (the L of the experiment)")
        return [None]
    if along == "languages":
        if at is not None:
            fail(f"{name}.at", "a trend over L spans every L of `languages`; drop `at`")
        if len(languages) < 2:
            fail("languages", f"{name} is a trend over L and needs at least two")
        return [None]
    values = list(languages) if at == EVERY else at if isinstance(at, list) else [at]
    if (not values or any(isinstance(v, bool) or not isinstance(v, int) or v not in languages for v in values)
            or len(set(values)) != len(values)):  # fmt: skip
        fail(f"{name}.at", f"must be {EVERY}, one L of languages {list(languages)} or a list of them, got {at!r}")
    return values


def load_arms(claims: Claims, results_dir: Path) -> dict[str, ArmRuns]:
    """Every arm's ok runs with their per-query frames (bench.results.arms): one per seed, or per (seed, L) when the
    claims file has an axis of languages."""
    return load_arm_runs(claims.arms, results_dir, by_languages=bool(claims.languages))


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
    if claim.along == "alpha":
        return slope([claims.alpha_of_arm[label] for label in claim.arms])
    fit = slope(claims.languages)
    if len(claim.arms) == 1:
        return fit
    return lambda means: fit(means[:, 0::2] - means[:, 1::2])  # groups_of: a and b alternate, L by L


def groups_of(claims: Claims, claim: Claim) -> list[tuple[str, int | None]]:
    """The (arm, L) groups of runs a claim's statistic reads, in order: its arms at its L, or for a trend over L
    its arm(s) at every L (a, b, a, b, ... for a difference)."""
    if claim.along == "languages":
        return [(label, n) for n in claims.languages for label in claim.arms]
    return [(label, claim.at_languages) for label in claim.arms]


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
    shows); only when they share none are their seeds resampled independently. A trend over L of a
    difference pairs on the seeds every group has.
    """
    runs = [arms.get(label, ArmRuns()).at(n).on_set(set_name).scoped(claim.scope)
            for label, n in groups_of(claims, claim)]
    shared = sorted(set.intersection(*(set(r.seeds) for r in runs)))
    paired = claim.paired and bool(shared)
    if paired:
        runs = [r.restrict(shared) for r in runs]
    row = {"id": claim.id, "set": set_name, "text": claim.text, "metric": claim.metric, "kind": claim.kind,
           "expect": claim.expect, "exploratory": claim.exploratory, "paper": claim.paper,
           "n_seeds": "/".join(str(len(r.seeds)) for r in runs), "base_id": claim.base_id or claim.id,
           "n_languages": math.nan if claim.at_languages is None else claim.at_languages,
           "scope": claim.scope}  # fmt: skip
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
