"""ModelCard registry: everything the toolchain needs to know about a model family.

A card carries the config sizes, how to build the torch module (lazily: torch is imported only
when a module is built), the IOSpec of each exportable graph, example inputs, the numpy
pre/post-processing that runs identically in tests, ``edge run`` and on the car, the synthetic data
generator and the task metric. User models exported through ``edge.export(module, ...)`` do not
need a card; cards are how our own families plug into the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.spec import IOSpec


@dataclass(frozen=True)
class Graph:
    """One exportable graph of a family: a name, its IOSpec and how to get the torch module."""

    name: str
    io: Callable[[dict[str, Any]], IOSpec]
    module: Callable[[Any], Any]  # full model -> the nn.Module computing this graph
    example_inputs: Callable[[dict[str, Any], int, int], dict[str, Any]]  # (cfg, batch, seed)


@dataclass(frozen=True)
class ModelCard:
    """What the toolchain knows about one family; ``build`` is the only part that needs torch."""

    name: str
    description: str
    configs: dict[str, dict[str, Any]]
    default_config: str
    build: Callable[[dict[str, Any]], Any]
    graphs: dict[str, Graph]
    default_checkpoint: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def config(self, name_or_cfg: str | dict[str, Any] | None = None) -> dict[str, Any]:
        if isinstance(name_or_cfg, dict):
            return dict(name_or_cfg)
        key = name_or_cfg or self.default_config
        if key not in self.configs:
            raise ModelError(f"model '{self.name}' has no config '{key}' (configs: {sorted(self.configs)})")
        return dict(self.configs[key])


_CARDS: dict[str, Callable[[], ModelCard]] = {}


def register(name: str, factory: Callable[[], ModelCard]) -> None:
    """Add a family (a factory, so cards are built only when asked for)."""
    _CARDS[name] = factory


def get_card(name: str) -> ModelCard:
    """The card of a registered family, or ModelError listing the known names."""
    _ensure_builtin()
    if name not in _CARDS:
        raise ModelError(f"unknown model '{name}' (known: {', '.join(sorted(_CARDS))})")
    return _CARDS[name]()


def list_models() -> list[str]:
    """Names of the registered families."""
    _ensure_builtin()
    return sorted(_CARDS)


def _ensure_builtin() -> None:
    if "lane" not in _CARDS:
        from edge.models.lane import card as lane

        register("lane", lane.card)
