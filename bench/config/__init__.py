"""Configuration: `conf/` composed by Hydra at the edge, validated once into typed dataclasses."""

from bench.config.compose import PlannedRun, compose_config, plan_runs
from bench.config.run_config import RunConfig

__all__ = ["PlannedRun", "RunConfig", "compose_config", "plan_runs"]
