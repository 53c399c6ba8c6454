"""``edge run --command TEXT|FILE``: the text command a family reads beside its frames, for a whole run
or as a schedule by frame.

A TEXT is one command for every frame. A FILE (an existing path) is a schedule, one entry per line::

    # frame  command (in the form the family's card takes: `edge models` shows it)
    0        straight: follow the road
    40       left: turn left at the next junction

An entry holds from its frame (the primary sensor's frame number, counted from 0 as the source
delivered them) until the next entry; the first entry must be at frame 0 and the frames must increase.
Blank lines and lines starting with ``#`` are skipped. Every entry is parsed by the card (``Command.parse``)
before the first frame is read, so a word the model does not know is one line naming the file and line.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.errors import DataError

#: a schedule file larger than this is refused before it is read (a command per frame of an hour at 30 fps
#: is ~3 MB)
MAX_FILE_BYTES = 16 * 1024 * 1024
#: frame numbers longer than this are refused (int() of thousands of digits raises ValueError, and 10**18
#: frames is far beyond any run)
MAX_FRAME_DIGITS = 18


def control_character(text: str) -> str | None:
    """The first control character in ``text`` as ``U+XXXX`` (a tab is whitespace), else None. Why: a family's
    parser splits words on anything that is not a letter, so the model ran on the text without it while the
    records kept the raw text, an instruction the model never saw (a review)."""
    import unicodedata

    bad = next((c for c in text if c != "\t" and unicodedata.category(c) == "Cc"), None)
    return None if bad is None else f"U+{ord(bad):04X}"


def parse_schedule(text: str, where: str) -> list[tuple[int, str]]:
    """Schedule lines -> [(first frame, command text)], frames strictly increasing from 0.

    ``where`` names the file in errors (``FILE:LINE: what is wrong``).
    """
    return [(frame, command) for frame, command, _ in schedule_lines(text, where)]


def schedule_lines(text: str, where: str) -> list[tuple[int, str, int]]:
    """As :func:`parse_schedule`, with each entry's line number (for errors about its command)."""
    entries: list[tuple[int, str, int]] = []
    # lines end at a newline only: splitlines() also split at a form feed or U+001C-U+001E, U+0085, U+2028, so a
    # command held one and every error after it named the wrong line
    for no, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, rest = [*line.split(None, 1), ""][:2]
        rest = rest.strip()
        if not head.isascii() or not head.isdigit():
            raise DataError(f"{where}:{no}: expected 'FRAME COMMAND' with FRAME a whole number, got '{line[:60]}'")
        if len(head) > MAX_FRAME_DIGITS:
            raise DataError(f"{where}:{no}: frame number '{head[:20]}...' has {len(head)} digits, at most "
                            f"{MAX_FRAME_DIGITS} allowed")
        if not rest:
            raise DataError(f"{where}:{no}: frame {int(head)} has no command")
        if (bad := control_character(rest)) is not None:
            raise DataError(f"{where}:{no}: the command holds the control character {bad} (a command is printable "
                            "text)")
        frame = int(head)
        if not entries and frame != 0:
            raise DataError(f"{where}:{no}: the first entry must be at frame 0 (got {frame}): "
                            "the frames before it would have no command")
        if entries and frame <= entries[-1][0]:
            raise DataError(f"{where}:{no}: frame {frame} does not come after frame {entries[-1][0]}")
        entries.append((frame, rest, no))
    if not entries:
        raise DataError(f"{where}: no command in the file (lines 'FRAME COMMAND', the first at frame 0)")
    return entries


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Parsed commands by first frame; ``at(seq)`` is the one in force at frame ``seq``."""

    key: str
    frames: tuple[int, ...]
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    def at(self, seq: int) -> Any:
        return self.values[max(0, bisect.bisect_right(self.frames, seq) - 1)]

    def annotate(self, frames: Mapping[str, Any], sensor: str) -> dict[str, Any]:
        """``frames`` with ``sensor``'s frame carrying the command in force in its meta."""
        out = dict(frames)
        fr = out[sensor]
        out[sensor] = dataclasses.replace(fr, meta={**fr.meta, self.key: self.at(int(fr.seq))})
        return out


def load_commands(arg: str, card: Any, cfg: dict[str, Any]) -> Schedule:
    """``--command`` (a TEXT or a schedule FILE) -> the Schedule, every entry parsed by ``card.command``.

    A family without a command refuses it in one line, as does a FILE that cannot be read.
    """
    spec = getattr(card, "command", None)
    if spec is None:
        name = getattr(card, "name", None)
        raise DataError(f"--command: model '{name}' takes no command" if name else
                        "--command: this bundle's model takes no command (its family declares none)")
    path = Path(arg)
    is_file = False
    special = False
    with contextlib.suppress(OSError):  # a name too long for the file system is a text, not a file
        is_file = len(arg) < 4096 and path.is_file()
        special = len(arg) < 4096 and (path.is_fifo() or path.is_char_device() or path.is_socket())
    if special:  # a pipe was taken as the command text itself ("instruction 'c_fifo': start with ...")
        raise DataError(f"{path}: not a regular file (--command takes a text or a schedule file)")
    if is_file:
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise DataError(f"{path}: {size} bytes, more than a command schedule can be "
                                f"({MAX_FILE_BYTES // 2**20} MiB)")
            text = path.read_text(encoding="utf-8-sig")  # Windows Notepad starts with a byte-order mark
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a UTF-8 text file of 'FRAME COMMAND' lines") from None
        except OSError as e:
            raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
        # (first frame, command text, where an error about it points)
        items = [(f, t, f"{path}:{no} (frame {f})") for f, t, no in schedule_lines(text, str(path))]
    else:
        if not arg.strip():
            raise DataError("--command: empty (give the command text, or a file of 'FRAME COMMAND' lines)")
        if (bad := control_character(arg.strip())) is not None:
            raise DataError(f"--command: the text holds the control character {bad} (a command is printable text; "
                            "a schedule is a file of 'FRAME COMMAND' lines)")
        def parses(text: str) -> bool:
            try:
                spec.parse(text, cfg)
            except DataError:
                return False
            return True

        is_dir = False
        with contextlib.suppress(OSError):
            is_dir = path.is_dir()
        # a folder is never a schedule; a command that a folder here is named after is still a command (`--command
        # left` beside the camera folders front/ left/ right/); a path is a path
        if is_dir and ("/" in arg or not parses(arg.strip())):
            raise DataError(f"--command {arg}: is a folder (give the command text, or a file of 'FRAME COMMAND' "
                            "lines)")
        if arg.endswith((".txt", ".cmd", ".commands")) or "/" in arg:
            raise DataError(f"--command {arg}: no such file (a text command has no '/')")
        items = [(0, arg.strip(), "--command")]
    values = []
    for _, text, where in items:
        try:
            values.append(spec.parse(text, cfg))
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
    return Schedule(spec.key, tuple(f for f, _, _ in items), tuple(values), tuple(t for _, t, _ in items))
