"""Model families. ``get_card(name)`` returns a :class:`ModelCard`; torch loads only on ``build``.

The contract a family implements is in :mod:`edge.models.contract`; discovery (entry points group
``edge.families``, our sub-packages, :func:`register`) in :mod:`edge.models.registry`.
"""

from edge.models.contract import (
    Command,
    FamilyData,
    Graph,
    LabelledData,
    LazySamples,
    Metric,
    ModelCard,
    ProgramSpec,
    Runner,
    Sensors,
    Trainer,
    feeds_for,
    feeds_wanted,
    percent_per_sample,
)
from edge.models.registry import get_card, list_models, register, unregister

__all__ = ["Command", "FamilyData", "Graph", "LabelledData", "LazySamples", "Metric", "ModelCard", "ProgramSpec",
           "Runner", "Sensors", "Trainer", "feeds_for", "feeds_wanted", "get_card", "list_models", "percent_per_sample",
           "register", "unregister"]
