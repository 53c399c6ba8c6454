"""edge.names.name_list: the one reader of comma-separated name lists (CLI options and API arguments)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import EdgeError
from edge.names import name_list

NAME = st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: s.strip() == s and s)


def test_examples() -> None:
    assert name_list("--x", "fp32, int8") == ["fp32", "int8"]
    assert name_list("--x", ("onnx",)) == ["onnx"]
    assert name_list("--x", [" a "]) == ["a"]
    assert name_list("--x", None) is None


@pytest.mark.parametrize("value", ["", ",", " , ,", [], ()])
def test_nothing_named_is_refused(value: object) -> None:
    with pytest.raises(EdgeError, match=r"^--programs .*names nothing"):
        name_list("--programs", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [[""], ["a", " "], ["a", 3]])
def test_a_blank_or_non_string_member_is_refused(value: list) -> None:
    with pytest.raises(EdgeError, match="is not a name"):
        name_list("targets", value)


@given(st.lists(NAME, min_size=1, max_size=6))
def test_joined_names_read_back(names: list[str]) -> None:
    assert name_list("--x", ",".join(names)) == names
    assert name_list("--x", " , ".join(names) + ",") == names
    assert name_list("--x", names) == names


@given(st.text())
def test_any_string_is_a_list_or_one_line_error(raw: str) -> None:
    try:
        out = name_list("--x", raw)
    except EdgeError as e:
        assert "\n" not in str(e)
        return
    assert out and all(n and n == n.strip() and "," not in n for n in out)
