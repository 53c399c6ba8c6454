"""``--command`` schedules: the parser round-trips what it documents and refuses the rest in one line
naming the file and line; ``Schedule.at`` picks the entry in force; a family without a command refuses it."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.data.frame import Frame
from edge.errors import DataError
from edge.models.contract import Command
from edge.stream import commands
from edge.stream.commands import load_commands, parse_schedule

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs")), min_size=1, max_size=12)
_words = st.lists(_text, min_size=1, max_size=4).map(" ".join).filter(lambda t: not t.startswith("#"))


@given(st.lists(st.tuples(st.integers(1, 10_000), _words), min_size=1, max_size=8),
       st.lists(st.sampled_from(["", "# a comment", "   ", "\t# x 3 y"]), min_size=8, max_size=8),
       st.sampled_from([" ", "\t", "   "]))
@settings(max_examples=200, deadline=None)
def test_schedule_round_trip(gaps: list[tuple[int, str]], noise: list[str], sep: str) -> None:
    frames = [0]
    for g, _ in gaps[1:]:
        frames.append(frames[-1] + g)
    entries = list(zip(frames, [t for _, t in gaps]))
    lines = []
    for (f, t), junk in zip(entries, noise):
        lines += [junk, f"  {f}{sep}{t}  "]
    assert parse_schedule("\n".join(lines), "r.txt") == entries


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_is_one_line(text: str) -> None:
    try:
        entries = parse_schedule(text, "r.txt")
    except DataError as e:
        assert str(e).startswith("r.txt") and "\n" not in str(e)
        return
    assert entries[0][0] == 0 and all(a[0] < b[0] for a, b in itertools.pairwise(entries))
    assert all(t == t.strip() and t for _, t in entries)


@pytest.mark.parametrize(("text", "says"), [
    ("", "r.txt: no command in the file"),
    ("# only\n\n", "r.txt: no command in the file"),
    ("3 left", "r.txt:1: the first entry must be at frame 0 (got 3)"),
    ("0 left\n0 right", "r.txt:2: frame 0 does not come after frame 0"),
    ("0 left\nx right", "r.txt:2: expected 'FRAME COMMAND'"),
    ("0 left\n-1 right", "r.txt:2: expected 'FRAME COMMAND'"),
    ("0", "r.txt:1: frame 0 has no command"),
    ("٣ left", "r.txt:1: expected 'FRAME COMMAND'"),  # a non-ASCII digit is not a frame number
    # a review: a control character vanished between words (the model ran on "take the left", the records kept it),
    # and a form feed split a line, so errors after it named the wrong line
    ("0 take the \x01 left", "r.txt:1: the command holds the control character U+0001"),
    ("0 left\n4 take the\x0cnext left", "r.txt:2: the command holds the control character U+000C"),
    ("0 le\x1eft\n4 right\n4 x", "r.txt:1: the command holds the control character U+001E"),
    ("0 left\r\n4 a\x85\n2 x", "r.txt:3: frame 2 does not come after frame 4"),  # U+0085 is no line end
])
def test_schedule_errors(text: str, says: str) -> None:
    with pytest.raises(DataError) as e:
        parse_schedule(text, "r.txt")
    assert str(e.value).startswith(says), str(e.value)


def _card(parse=lambda text, cfg: text.upper()) -> SimpleNamespace:
    return SimpleNamespace(name="fam", command=Command("order", parse, "ORDER"))


def test_schedule_in_force_and_annotation(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("0 a\n5 b\n9 c\n")
    s = load_commands(str(tmp_path / "r.txt"), _card(), {})
    assert [s.at(i) for i in (0, 4, 5, 8, 9, 10**6)] == ["A", "A", "B", "B", "C", "C"]
    frames = {"cam": Frame(None, 0, 7, "cam", {"x": 1}), "other": Frame(None, 0, 7, "other", {})}
    out = s.annotate(frames, "cam")
    assert out["cam"].meta == {"x": 1, "order": "B"} and out["other"] is frames["other"]
    assert frames["cam"].meta == {"x": 1}  # the source's frame is not changed in place
    t = load_commands("go now", _card(), {})
    assert t.frames == (0,) and t.at(123) == "GO NOW"
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf0 a\r\n5 b\r\n")  # Windows Notepad: a byte-order mark, CRLF
    assert load_commands(str(tmp_path / "bom.txt"), _card(), {}).at(0) == "A"


def test_load_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="model 'lane' takes no command"):
        load_commands("left", SimpleNamespace(name="lane", command=None), {})
    with pytest.raises(DataError, match="takes no command"):
        load_commands("left", None, {})
    with pytest.raises(DataError, match="no such file"):
        load_commands(str(tmp_path / "route.txt"), _card(), {})
    import os

    os.mkfifo(tmp_path / "pipe")  # was taken as the command text itself
    with pytest.raises(DataError, match=r"pipe: not a regular file \(--command takes a text or a schedule file\)"):
        load_commands(str(tmp_path / "pipe"), _card(), {})
    with pytest.raises(DataError, match="is a folder"):
        load_commands(str(tmp_path), _card(), {})
    # a review: `--command left` run beside the camera folders front/ left/ right/ was refused as a folder
    (tmp_path / "left").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_commands("left", _card(), {}).texts == ("left",)
    with pytest.raises(DataError, match="empty"):
        load_commands("  ", _card(), {})
    for text in ("left: take the \x01 left", "left: take the next\nleft"):
        with pytest.raises(DataError, match=r"--command: the text holds the control character U\+000[1A]"):
            load_commands(text, _card(), {})
    assert load_commands("left:\ttake the next left", _card(), {}).texts == ("left:\ttake the next left",)
    (tmp_path / "bin.txt").write_bytes(b"0 \xff\xfe left\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_commands(str(tmp_path / "bin.txt"), _card(), {})
    (tmp_path / "big.txt").write_text("0 left\n" * 10)
    monkeypatch.setattr(commands, "MAX_FILE_BYTES", 16)
    with pytest.raises(DataError, match="more than a command schedule can be"):
        load_commands(str(tmp_path / "big.txt"), _card(), {})

    def refuse(text: str, cfg: dict) -> str:
        raise DataError(f"'{text}' is not an order")

    (tmp_path / "r.txt").write_text("0 fine\n")
    with pytest.raises(DataError) as e:
        load_commands(str(tmp_path / "r.txt"), _card(refuse), {})
    assert str(e.value) == f"{tmp_path / 'r.txt'}:1 (frame 0): 'fine' is not an order"
    with pytest.raises(DataError) as e:
        load_commands("fine", _card(refuse), {})
    assert str(e.value) == "--command: 'fine' is not an order"
