"""Compose and validate configurations before Hydra launches anything.

Entry points call `plan_runs(argv)` first: it expands the sweep exactly as Hydra's basic
sweeper will (the sweep config's `hydra.sweeper.params` plus the command line), composes
every run and validates it into a `RunConfig`. Bad input therefore fails as one line, before
any directory is created or any run started, and the sweep knows its runs (for progress
and resume) up front.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from bench import PROJECT_ROOT
from bench.config import RunConfig, to_run_config
from bench.data import load_lareqa
from bench.errors import ConfigError

CONF_DIR = PROJECT_ROOT / "conf"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its command-line overrides and its validated config."""

    overrides: tuple[str, ...]
    config: RunConfig


def compose_config(config_name: str, overrides: list[str], hydra_config: bool = False) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=hydra_config)
    except HydraException as exc:
        raise ConfigError(_hydra_message(exc)) from None
    finally:
        GlobalHydra.instance().clear()


def _hydra_message(exc: Exception) -> str:
    """Hydra's composition errors, shortened to the line that names the problem."""
    text = str(exc)
    if "Could not find" in text and "/" in text:
        group = text.split("'")[1].split("/")[0] if "'" in text else "a group"
        options = [line.strip(" -\t") for line in text.splitlines()[2:] if line.strip().startswith("*")]
        options = [o.lstrip("* ") for o in options]
        hint = f"; choose from {', '.join(options)}" if options else ""
        return f"unknown {group}: {text.splitlines()[0]}{hint}"
    return " ".join(text.split())


def parse_overrides(argv: list[str]):
    try:
        return OverridesParser.create().parse_overrides(argv)
    except HydraException as exc:
        raise ConfigError(f"cannot parse overrides {argv}: {_hydra_message(exc)}") from None


def expand_sweep(config_name: str, argv: list[str]) -> list[list[str]]:
    """Every run's overrides: the config's sweeper params, overridden by the command line."""
    parsed = parse_overrides(argv)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    hydra_cfg = compose_config(config_name, fixed, hydra_config=True).hydra
    params = OmegaConf.to_container(hydra_cfg.sweeper.get("params") or {}, resolve=False)
    given = {o.key_or_group for o in parsed}
    lines = [f"{key}={value}" for key, value in params.items() if key not in given] + list(argv)
    batches = BasicSweeper.split_arguments(parse_overrides(lines), None)
    return [list(run) for batch in batches for run in batch]


def plan_runs(config_name: str, argv: list[str], sweep: bool) -> list[PlannedRun]:
    """Compose and validate every run the command line asks for."""
    runs = expand_sweep(config_name, argv) if sweep else [list(argv)]
    planned = []
    for overrides in runs:
        if not sweep and any(o.is_sweep_override() for o in parse_overrides(overrides)):
            raise ConfigError(f"a single run takes single values; use `python -m bench.sweep` for {overrides}")
        planned.append(PlannedRun(tuple(overrides), to_run_config(compose_config(config_name, overrides))))
    for root, languages in sorted({(p.config.data.root, p.config.data.files) for p in planned}):
        load_lareqa("preflight", root, languages)  # a missing or corrupt data file fails now, as one line
    return planned
