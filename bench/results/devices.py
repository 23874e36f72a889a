"""Which GPU holds which configuration, up to how many languages: predicted rows read against real cards.

A predicted row (`mode=predict`, bench/predict.py) holds the probed step's tensor peak and, apart, a margin for what a
tensor tracker cannot see (CUDA context, workspaces, fragmentation), and the same two for its worst case (every text
at the length cap; masked LM at its Hoeffding bound). What must fit on a card is tensor peak + margin, against the
memory a process can use there (conf/devices.yaml). A prediction has an expected error e (recorded per row), so each
total is a band, and a card's verdict on it is:
    fits          total x (1 + e) <= usable
    marginal      total x (1 - e) <= usable < total x (1 + e): the band crosses the limit
    does not fit  total x (1 - e) > usable
Along L, the verdicts are read off the rows as they are (no interpolation between language counts): up to which L
every count fits, and up to which every count at least is marginal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from bench import PROJECT_ROOT
from bench.errors import ConfigError
from bench.results.fit import PREDICTED

GiB = 2**30
MiB = 2**20
DEVICES_FILE = PROJECT_ROOT / "conf" / "devices.yaml"
KEYS = ["model", "batch_size", "strategy", "device_type", "mixed_precision"]  # one curve against L each
# Rows predicted before `predicted_error` was recorded carry the band bench/predict.py claimed for them then.
ERROR_BEFORE_RECORDED = {"cuda": 0.05}
VERDICT_NOTE = ("Each total is read with the prediction's expected error ±e: it fits a card if total × (1 + e) is "
                "within the memory a process can use there (conf/devices.yaml), is marginal if the band crosses that "
                "limit, and does not fit if even total × (1 − e) exceeds it. 'fits to L=n': every predicted language "
                "count up to n fits; 'worst': the same step with every text at the length cap, with and without "
                "padding (masked LM: its Hoeffding bound on masked tokens), which no plan of these settings exceeds.")


# ---------------------------------------------------------------- the cards


@dataclass(frozen=True)
class Card:
    """One GPU as a process sees it."""

    name: str
    memory_total_mib: int  # nvidia-smi memory.total
    usable_mib: int  # what a process can allocate (CUDA's total global memory), the CUDA context included
    source: str

    @property
    def usable_bytes(self) -> int:
        return self.usable_mib * MiB

    @property
    def label(self) -> str:
        return f"{self.name} ({self.usable_mib / 1024:.2f} GiB)"


def load_cards(path: Path = DEVICES_FILE) -> tuple[tuple[Card, ...], tuple[str, ...]]:
    """The configured cards, in file order, and the names of the headline ones; each error names the key to fix."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: cannot read the GPU table ({type(exc).__name__}: {reason})") from None
    entries = raw.get("cards") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: `cards` must be a non-empty list of cards")
    cards = tuple(_card(entry, f"{path}: cards[{i}]") for i, entry in enumerate(entries))
    names = [c.name for c in cards]
    headline = raw.get("headline", [])
    unknown = [h for h in headline if h not in names] if isinstance(headline, list) else [headline]
    if len(set(names)) != len(names) or unknown:
        raise ConfigError(f"{path}: card names must be distinct and `headline` must name cards; unknown {unknown}")
    return cards, tuple(headline)


def _card(entry, where: str) -> Card:
    if not isinstance(entry, dict) or set(entry) != {"name", "memory_total_mib", "usable_mib", "source"}:
        raise ConfigError(f"{where} must have exactly name, memory_total_mib, usable_mib and source")
    card = Card(**entry)
    sizes = (card.memory_total_mib, card.usable_mib)
    positive = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes)
    if not positive or card.usable_mib > card.memory_total_mib:
        raise ConfigError(f"{where} ({card.name}): usable_mib and memory_total_mib must be positive integers, "
                          "usable <= total")  # fmt: skip
    return card


CARDS, HEADLINE = load_cards()


def card_lines(cards: tuple[Card, ...] = CARDS) -> list[tuple[float, str]]:
    """Where a figure draws the cards: each distinct usable size in GiB, floored to 0.1 (a limit must not move up),
    with the names of the cards at it, smallest first."""
    groups: dict[float, list[str]] = {}
    for card in sorted(cards, key=lambda c: c.usable_mib):
        groups.setdefault(math.floor(card.usable_mib / 1024 * 10) / 10, []).append(card.name)
    return [(gib, " / ".join(names)) for gib, names in groups.items()]


DEVICE_GIB = tuple(gib for gib, _ in card_lines())  # the sizes figures draw across (usable memory, not nominal)


# ---------------------------------------------------------------- verdicts


def verdict(total_bytes: float, usable_bytes: float, error: float) -> str:
    """'fits', 'marginal' or 'does not fit': the prediction's band [total(1-e), total(1+e)] against the card."""
    if total_bytes * (1 + error) <= usable_bytes:
        return "fits"
    return "marginal" if total_bytes * (1 - error) <= usable_bytes else "does not fit"


@dataclass(frozen=True)
class Reach:
    """How far along L a curve holds on one card: the largest L up to which every count fits, and up to which
    every count at least is marginal (None: not even the smallest L)."""

    fits_to: int | None
    marginal_to: int | None
    n_max: int

    def text(self) -> str:
        """'fits all (to L=104)', 'fits to L=32, marginal to L=64', 'marginal to L=8' or 'does not fit'."""
        end = lambda n: f"L={n}" + (" (all)" if n == self.n_max else "")  # noqa: E731
        if self.marginal_to is None:
            return "does not fit"
        if self.fits_to == self.n_max:
            return f"fits all (to L={self.n_max})"
        if self.fits_to is None:
            return f"marginal to {end(self.marginal_to)}"
        if self.fits_to == self.marginal_to:
            return f"fits to L={self.fits_to}"
        return f"fits to L={self.fits_to}, marginal to {end(self.marginal_to)}"


def reach(totals: pd.Series, usable_bytes: float, error: float) -> Reach:
    """The Reach of one curve (total bytes indexed by L) on a card of `usable_bytes`, read with error ±`error`."""
    fits_to = marginal_to = None
    for level, total in sorted(totals.items()):
        state = verdict(total, usable_bytes, error)
        if state == "does not fit":
            break
        if state == "fits" and fits_to == marginal_to:  # every smaller count fit too
            fits_to = int(level)
        marginal_to = int(level)
    return Reach(fits_to, marginal_to, int(max(totals.index)))


def predicted_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows predicted for a GPU (device_type cuda) with their totals (tensor peak + margin, bytes and GiB),
    the worst case's (NaN in rows from before it was predicted) and their expected error.
    A CPU prediction's margin is the host process, not device memory, so it has no GPU to fit."""
    if "source" not in runs or "device_type" not in runs or runs.empty:
        return runs.iloc[0:0]
    wanted = (runs["source"] == PREDICTED) & (runs["device_type"] == "cuda") & runs["peak_tensor_bytes"].notna()
    rows = runs[wanted].copy()
    column = lambda name: rows[name] if name in rows else pd.Series(float("nan"), index=rows.index)  # noqa: E731
    rows["total_bytes"] = rows["peak_tensor_bytes"] + column("predicted_margin_bytes").fillna(0)
    rows["total_gib"] = rows["total_bytes"] / GiB
    rows["worst_total_bytes"] = column("worst_peak_tensor_bytes") + column("worst_margin_bytes")
    rows["worst_total_gib"] = rows["worst_total_bytes"] / GiB
    rows["error"] = column("predicted_error").fillna(rows["device_type"].map(ERROR_BEFORE_RECORDED))
    return rows


def device_fit(runs: pd.DataFrame, cards: tuple[Card, ...] = CARDS) -> pd.DataFrame:
    """One row per (model, batch size, strategy, device type, precision): the L range predicted, the totals at its
    ends (median over seeds where a configuration has several), the worst case's total at the largest L, the
    largest expected error, and per card the Reach of the plan's maximum (`reach`) and of the worst case
    (`worst_reach`, None where a row lacks the worst case)."""
    rows = predicted_rows(runs)
    out = [curve_fit(dict(zip(KEYS, values)), group, cards) for values, group in rows.groupby(KEYS, sort=True)]
    columns = [*KEYS, "n_languages_min", "n_languages_max", "total_gib_min", "total_gib_max", "worst_gib_max", "error",
               "reach", "worst_reach"]  # fmt: skip
    return pd.DataFrame(out, columns=columns)


def curve_fit(keys: dict, group: pd.DataFrame, cards: tuple[Card, ...]) -> dict:
    """device_fit's row of one curve against L."""
    medians = group.groupby("n_languages")["total_bytes"].median()
    worst = group.groupby("n_languages")["worst_total_bytes"].median()
    error = float(group["error"].max())
    complete = bool(worst.notna().all())  # rows from before the worst case was predicted have none
    return {**keys, "n_languages_min": int(medians.index.min()), "n_languages_max": int(medians.index.max()),
            "total_gib_min": medians.iloc[0] / GiB, "total_gib_max": medians.iloc[-1] / GiB,
            "worst_gib_max": worst.iloc[-1] / GiB if complete else float("nan"), "error": error,
            "reach": {c.name: reach(medians, c.usable_bytes, error) for c in cards},
            "worst_reach": {c.name: reach(worst, c.usable_bytes, error) if complete else None for c in cards}}


def card_cell(fit, card: Card) -> str:
    """One card's verdict on a device_fit row: the plan's maximum, then the worst case where it was predicted."""
    worst = fit.worst_reach[card.name]
    return fit.reach[card.name].text() + ("" if worst is None else f"; worst: {worst.text()}")


def device_rows(fits: pd.DataFrame, cards: tuple[Card, ...] = CARDS) -> tuple[list[str], list[list]]:
    """The device-fit table's header and rows, in `fits`' order: GiB at the ends of L, the worst case, a card each."""
    header = ["model", "batch", "strategy", "target", "GiB at fewest L", "GiB at most L", "worst case GiB at most L",
              "error", *(c.label for c in cards)]  # fmt: skip
    precision = lambda value: "fp32" if value == "no" else value  # noqa: E731
    rows = [[r.model, r.batch_size, r.strategy, f"{r.device_type}, {precision(r.mixed_precision)}",
             f"{r.total_gib_min:.2f} (L={r.n_languages_min})", f"{r.total_gib_max:.2f} (L={r.n_languages_max})",
             "–" if math.isnan(r.worst_gib_max) else f"{r.worst_gib_max:.2f}", f"±{r.error:.0%}",
             *(card_cell(r, c) for c in cards)]
            for r in fits.itertuples(index=False)]  # fmt: skip
    return header, rows
