"""Fixtures of the model tests: the toy family (tests/fixtures/toyfam) as a card, for the shared training loop."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def toy() -> Iterator[Any]:
    """The toy family's card (a tiny CNN + attention classifier with a trainer)."""
    sys.path.insert(0, str(FIXTURES))
    import toyfam.card

    yield toyfam.card.card()
    sys.path.remove(str(FIXTURES))
