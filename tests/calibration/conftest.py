"""Fixtures of the calibration tests: the toy family (tests/fixtures/toyfam) registered under a test's own name."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def toy_as() -> Callable[[str], AbstractContextManager[Any]]:
    """``with toy_as("name") as mod``: the toy family registered as ``name`` (a card of its own, so a test's
    export does not share another test's registration); yields its ``toyfam.card`` module."""

    @contextmanager
    def registered(name: str) -> Iterator[Any]:
        import edge

        sys.path.insert(0, str(FIXTURES))
        try:
            import toyfam.card

            edge.models.register(name, lambda: dataclasses.replace(toyfam.card.card(), name=name))
            try:
                yield toyfam.card
            finally:
                edge.models.unregister(name)
        finally:
            sys.path.remove(str(FIXTURES))

    return registered
