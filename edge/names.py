"""Name lists (``--programs stream,clip``, ``precisions="fp32,int8"``), read one way by the CLIs and the API.

One reader, so the two cannot drift: a list that names nothing is refused by both, where it used to mean
"every program" on one path and "no target" on the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.errors import EdgeError


def name_list(option: str, value: str | Sequence[str] | None) -> list[str] | None:
    """``value`` as a list of names, or None when it was not given.

    A string is comma-separated names (blanks around them dropped); a sequence is taken as it is. One that
    names nothing (``""``, ``","``, ``[]``) raises EdgeError naming ``option``: an empty ``--programs`` used
    to mean every program and an empty ``--freeze`` none, each the opposite of what someone who typed the
    option may have meant.
    """
    if value is None:
        return None
    if isinstance(value, str):
        out = [n.strip() for n in value.split(",") if n.strip()]
    elif not isinstance(value, Sequence):  # a number or a set: `list(8)` was a TypeError from deep inside
        raise EdgeError(f"{option}: a comma-separated string or a list of names, got {type(value).__name__}")
    else:
        out = list(value)
        bad = [n for n in out if not isinstance(n, str) or not n.strip()]
        if bad:
            raise EdgeError(f"{option} {value!r}: {bad[0]!r} is not a name")
        out = [n.strip() for n in out]
    if not out:
        raise EdgeError(f"{option} {value!r}: names nothing; give one or more names, comma-separated")
    return out
