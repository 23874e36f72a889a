"""The strategy registry: a strategy is one class, registered by name and found by name.

Every module of `bench.strategies` is imported on first lookup, so a new strategy is one module
(its class decorated with `@register`) plus one `conf/strategy/<name>.yaml`, and nothing else: the
sweep and check grids, the config edge, tables and plots all read the registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from bench.errors import ConfigError

_REGISTRY: dict[str, type] = {}
_INFRASTRUCTURE = {"registry", "sampling", "base"}  # modules that define no strategy


def register(cls: type) -> type:
    """Class decorator: make a strategy findable by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"two strategies are named {cls.name!r}: {_REGISTRY[cls.name].__module__} and {cls.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    import bench.strategies as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{package.__name__}.{module.name}")


def strategy_names() -> tuple[str, ...]:
    """Every registered strategy, in table and plot order (`order`, then name)."""
    _discover()
    return tuple(sorted(_REGISTRY, key=lambda name: (_REGISTRY[name].order, name)))


def default_strategy_names() -> tuple[str, ...]:
    """The strategies a sweep runs when none is named: every registered one but the opt-in arms."""
    return tuple(name for name in strategy_names() if _REGISTRY[name].in_default_sweep)


def strategy_class(name: str) -> type:
    """The class registered as `name`, or a one-line error listing the valid names."""
    names = strategy_names()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(names)}")
    return _REGISTRY[name]
