"""Hydra at the edge: compose `conf/` with command-line overrides into validated `RunConfig`s.

Entry points call `plan_runs` first. It expands a sweep (every registered strategy, the
config's `sweep.axes`, the command line's comma-separated values), composes and validates each
run once, and preflights the data, so bad input fails as one line before anything starts; a run that
trains pretrained weights faster than `finetune_check.max_lr` gets one warning line. Only
Hydra's public API is used: the compose API and the override parser.
"""

from __future__ import annotations

import itertools
import random
import sys
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from bench import PROJECT_ROOT
from bench.config.run_config import FinetuneCheck, RunConfig, build
from bench.data.lareqa import load_lareqa
from bench.errors import ConfigError
from bench.strategies import default_strategy_names, strategy_names

CONF_DIR = PROJECT_ROOT / "conf"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its command-line overrides and its validated config."""

    overrides: tuple[str, ...]
    config: RunConfig


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except HydraException as exc:
        raise ConfigError(_hydra_message(exc)) from None
    finally:
        GlobalHydra.instance().clear()


def _hydra_message(exc: Exception) -> str:
    """Hydra's composition errors, shortened to the line that names the problem."""
    text = str(exc)
    if "Could not find" in text and "/" in text:
        group = text.split("'")[1].split("/")[0] if "'" in text else "a group"
        options = [line.strip(" -\t").lstrip("* ") for line in text.splitlines()[2:] if line.strip().startswith("*")]
        hint = f"; choose from {', '.join(options)}" if options else ""
        return f"unknown {group}: {text.splitlines()[0]}{hint}"
    return " ".join(text.split())


def parse_overrides(argv: list[str]):
    try:
        return OverridesParser.create().parse_overrides(argv)
    except HydraException as exc:
        raise ConfigError(f"cannot parse overrides {argv}: {_hydra_message(exc)}") from None


def _values(override) -> list[str]:
    """The values one override stands for: several for a sweep (`a,b`, `range(...)`, `glob(*)` on strategy)."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if isinstance(override.value(), Glob):
        if override.key_or_group != "strategy":
            raise ConfigError(f"{override.input_line}: glob() sweeps only the strategy group")
        return list(override.value().filter(list(strategy_names())))
    return list(override.sweep_string_iterator())


def expand_sweep(config_name: str, argv: list[str]) -> list[list[str]]:
    """Every run's overrides: the cartesian product of the strategy axis, `sweep.axes` and the command line;
    with `sweep.grids` (a list of axes), the union of one such product per grid, each run once, so arms
    of one experiment can have different axes (e.g. more seeds for the main arms)."""
    parsed = parse_overrides(argv)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    section = _sweep_section(config_name, fixed)
    axes_cfg = section.get("axes") or {}
    grids = section.get("grids") or [{}]
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise ConfigError(f"sweep.grids must be a list of mappings (axis: values), got {grids!r}")
    runs: dict[tuple[str, ...], None] = {}
    for grid in grids:
        for run in _product(axes_cfg | grid, parsed, argv):
            runs.setdefault(tuple(run))
    return [list(run) for run in runs]


def _product(axes_cfg: dict, parsed, argv: list[str]) -> list[list[str]]:
    given = {o.key_or_group for o in parsed}
    lines = [] if "strategy" in given | set(axes_cfg) else [f"strategy={','.join(default_strategy_names())}"]
    lines += [f"{key}={value}" for key, value in axes_cfg.items() if key not in given] + list(argv)
    axes = [[f"{o.get_key_element()}={value}" for value in _values(o)] for o in parse_overrides(lines)]
    return [list(run) for run in itertools.product(*axes)]


def to_run_config(cfg: DictConfig) -> RunConfig:
    """A composed config, validated; interpolation and other OmegaConf errors become one line too."""
    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # noqa: BLE001 - interpolation errors, missing keys: still one line
        raise ConfigError(f"invalid configuration: {' '.join(str(exc).split())}") from None
    for section in ("sweep", "check", "finetune_check"):  # read by the planning, not part of a run
        raw.pop(section, None)
    return RunConfig.from_dict(raw)


def _sweep_section(config_name: str, fixed: list[str]) -> dict:
    section = compose_config(config_name, fixed).get("sweep")
    return OmegaConf.to_container(section, resolve=True) if section is not None else {}


def sweep_order_seed(config_name: str, argv: list[str]) -> int:
    fixed = [o.input_line for o in parse_overrides(argv) if not o.is_sweep_override()]
    seed = _sweep_section(config_name, fixed).get("order_seed", 0)
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"sweep.order_seed must be a non-negative integer, got {seed!r}")
    return seed


def shuffled(planned: list[PlannedRun], seed: int) -> list[PlannedRun]:
    """Runs in a seeded random order, so drift of the machine over a sweep spreads across strategies."""
    order = list(planned)
    random.Random(f"sweep-order/{seed}").shuffle(order)
    return order


def plan_runs(config_name: str, argv: list[str], sweep: bool) -> list[PlannedRun]:
    """Compose and validate every run the command line asks for (each exactly once); warn, one line per run,
    about pretrained weights trained at a from-scratch rate."""
    if not sweep and any(o.is_sweep_override() for o in parse_overrides(argv)):
        raise ConfigError(f"a single run takes single values; use `python -m bench.sweep` for {argv}")
    runs = expand_sweep(config_name, argv) if sweep else [list(argv)]
    composed = [compose_config(config_name, o) for o in runs]
    planned = list({run.config.run_id: run for run in reversed(
        [PlannedRun(tuple(o), to_run_config(c)) for o, c in zip(runs, composed)])}.values())[::-1]  # fmt: skip
    for root, languages in sorted({(p.config.data.root, p.config.data.files) for p in planned}):
        load_lareqa("preflight", root, languages)  # a missing or corrupt data file fails now, as one line
    for line in finetune_warnings(config_name, planned, finetune_check(composed[0])):
        print(line, file=sys.stderr, flush=True)
    return planned


def finetune_warnings(config_name: str, planned: list[PlannedRun], check: FinetuneCheck) -> list[str]:
    """One line per planned run that trains pretrained weights faster than `finetune_check.max_lr`.

    Planning is the one place every entry point passes once per run (a sweep's children read the config it
    wrote and never compose), so each such run is named exactly once."""
    too_fast = [p.config for p in planned if check.too_fast(p.config)]
    if not too_fast:
        return []  # the usual case composes nothing more
    preset_lr = compose_config(config_name, [f"train={check.train_preset}"]).train.lr
    return [check.warning(cfg, preset_lr) for cfg in too_fast]


def finetune_check(cfg: DictConfig) -> FinetuneCheck:
    """`finetune_check` of a composed config, validated (read from a sweep's first run: it is not an axis)."""
    section = cfg.get("finetune_check")
    raw = OmegaConf.to_container(section, resolve=True) if section is not None else None
    check = build(FinetuneCheck, raw, "finetune_check")
    if not (CONF_DIR / "train" / f"{check.train_preset}.yaml").is_file():
        choices = ", ".join(sorted(p.stem for p in (CONF_DIR / "train").glob("*.yaml")))
        raise ConfigError(f"finetune_check.train_preset={check.train_preset!r} is not in conf/train/; "
                          f"choose from {choices}")
    return check
