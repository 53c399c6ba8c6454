"""Instruction tokenisation: stable ids, fixed length, clear errors for words or commands the model lacks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import DataError
from edge.models.etavla.tokens import COMMANDS, PAD, TEMPLATES, UNK, default_vocabulary, tokenize, words_of


def test_vocabulary_is_stable_and_reserves_its_first_ids() -> None:
    v = default_vocabulary()
    assert v[:2] == [PAD, UNK] and v[2:2 + len(COMMANDS)] == [f"<{c}>" for c in COMMANDS]
    assert v == default_vocabulary() and len(set(v)) == len(v)
    assert all(w in v for ts in TEMPLATES.values() for t in ts for w in words_of(t))


def test_tokenize_pads_to_the_fixed_length() -> None:
    v = default_vocabulary()
    ids = tokenize("left", "Turn LEFT, at the next junction!", v, 10)
    assert ids.dtype == np.int64 and ids.shape == (10,)
    assert [v[i] for i in ids[:7]] == ["<left>", "turn", "left", "at", "the", "next", "junction"]
    assert (ids[7:] == 0).all()


def test_unknown_words_and_commands_are_one_clear_error() -> None:
    v = default_vocabulary()
    with pytest.raises(DataError, match="'banana' is not in the model's vocabulary"):
        tokenize("left", "turn left at the banana", v, 10)
    assert v[tokenize("left", "turn left at the banana", v, 10, unknown="unk")[5]] == UNK
    with pytest.raises(DataError, match="unknown route command 'sideways'"):
        tokenize("sideways", "keep lane", v, 10)
    with pytest.raises(DataError, match="at most 3"):
        tokenize("stop", "stop behind the car ahead", v, 4)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(COMMANDS), st.text(max_size=60), st.integers(1, 16))
def test_any_text_is_ids_of_the_right_length_or_a_data_error(command: str, text: str, length: int) -> None:
    v = default_vocabulary()
    try:
        ids = tokenize(command, text, v, length, unknown="unk")
    except DataError as e:
        assert "at most" in str(e)
        return
    assert ids.shape == (length,) and ids[0] == v.index(f"<{command}>") and ((ids >= 0) & (ids < len(v))).all()
