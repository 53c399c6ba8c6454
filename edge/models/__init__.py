"""Model families. ``get_card(name)`` returns a :class:`ModelCard`; torch loads only on ``build``."""

from edge.models.registry import Graph, ModelCard, get_card, list_models, register

__all__ = ["Graph", "ModelCard", "get_card", "list_models", "register"]
