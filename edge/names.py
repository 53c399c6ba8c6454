"""Name lists (``--programs stream,clip``, ``precisions="fp32,int8"``), read one way by the CLIs and the API,
and the ``key=value`` options a family's function takes (a source's or a data spec's).

One reader, so the two cannot drift: a list that names nothing is refused by both, where it used to mean
"every program" on one path and "no target" on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class _Everything:
    def __contains__(self, _key: object) -> bool:
        return True


def keyword_options(fn: Any, positional: int) -> set[str] | Any:
    """The ``key=value`` options ``fn`` takes: its keyword parameters after the first ``positional`` ones (a
    reader's (path, cfg), a generator's (n, hw, seed)); a container holding every key when it takes
    ``**options``. Why: an unknown key checked against this is one line listing the ones there are, where calling
    with it was Python's own "unexpected keyword argument" (or "multiple values for argument 'seed'")."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or C function without a signature: let the call decide
        return _Everything()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return _Everything()
    return {p.name for p in params[positional:] if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                              inspect.Parameter.POSITIONAL_OR_KEYWORD)}
