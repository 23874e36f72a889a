"""Evaluation sets, derived from the configuration: parts of the run's own data, and zero-shot sets.

`heldout`, `train` and `all` are the run's data (`data.root`, every language in `data.languages`,
split by `data.heldout_fraction`), so a dataset brought by the user, with languages this project has
never seen, is evaluated in all of them. Other names are `eval.external` sets (MLQA-R by default),
never trained on. Which summary columns a set fills is its role: `eval_heldout_*` for the held-out
part, `eval_zeroshot_*` for the first external set; every set is in the per-setting table.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.metric_names import EVAL_ROLES
from bench.data.lareqa import DataConfig, LareqaDataset, load_lareqa, split_by_article
from bench.errors import ConfigError
from bench.evaluation.config import DATA_PARTS, EvalConfig


@dataclass(frozen=True)
class EvalSet:
    """A LAReQA-style dataset ready for evaluation; `name` is what the per-setting table calls it."""

    name: str  # "<data.name>-heldout", "<data.name>-train", "<data.name>" or an external set's name
    role: str  # heldout | train | all | zeroshot
    dataset: LareqaDataset

    @property
    def summary_key(self) -> str | None:
        """The role whose `eval_column`s this set fills, or None (per-setting table only)."""
        return self.role if self.role in EVAL_ROLES else None


def eval_sets_for(eval_cfg: EvalConfig, data: DataConfig) -> list[EvalSet]:
    """Every set `eval.sets` names, restricted to `eval.languages` (codes a set lacks are skipped)."""
    wanted = eval_cfg.languages
    available = set(data.languages) | {lang for ext in eval_cfg.external.values() for lang in ext.languages}
    unknown = sorted(set(wanted or ()) - available)
    if unknown:
        raise ConfigError(f"eval.languages: unknown code(s) {', '.join(unknown)}; the evaluation sets have {', '.join(sorted(available))}")
    sets, zeroshot_taken = [], False
    for name in eval_cfg.sets:
        if name in DATA_PARTS:
            sets.append(_data_part(name, data, _restrict(data.languages, wanted, name)))
        else:
            external = eval_cfg.external[name]
            role = "table" if zeroshot_taken else "zeroshot"
            zeroshot_taken = True
            sets.append(EvalSet(name, role, load_lareqa(name, external.root, _restrict(external.languages, wanted, name))))
    return sets


def heldout_set(eval_cfg: EvalConfig, data: DataConfig) -> EvalSet:
    """The held-out part of the run's data, in `eval.languages` (what the training curve samples)."""
    return _data_part("heldout", data, _restrict(data.languages, eval_cfg.languages, "heldout"))


def _data_part(part: str, data: DataConfig, languages: tuple[str, ...]) -> EvalSet:
    full = load_lareqa(data.name, data.root, languages)
    if part == "all":
        return EvalSet(data.name, "all", full)
    train, heldout = split_by_article(full, data.heldout_fraction)
    return EvalSet(f"{data.name}-{part}", part, heldout if part == "heldout" else train)


def _restrict(languages: tuple[str, ...], wanted: tuple[str, ...] | None, name: str) -> tuple[str, ...]:
    chosen = languages if wanted is None else tuple(code for code in languages if code in wanted)
    if not chosen:
        raise ConfigError(f"eval.languages: none of {', '.join(wanted)} is in evaluation set {name!r} ({', '.join(languages)})")
    return chosen
