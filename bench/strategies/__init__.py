"""Batch strategies: each is one class in a registry (its parameters, batch sampler, objective,
collation and evaluation pooling); one module and one `conf/strategy/*.yaml` per strategy."""

from bench.strategies.registry import default_strategy_names, register, strategy_class, strategy_names

__all__ = ["default_strategy_names", "register", "strategy_class", "strategy_names"]
