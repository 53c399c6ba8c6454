"""Which model families exist: our folders, other packages' entry points, and ``register`` calls.

A family is found three ways, the same for ours and yours:

1. the ``edge.families`` entry point group: a package declares, in its pyproject,
   ``[project.entry-points."edge.families"] myfam = "mypkg.myfam.card:card"`` (a function returning a
   :class:`~edge.models.contract.ModelCard`); edge-deploy declares its own families this way too;
2. the sub-packages of :mod:`edge.models` that have a ``card`` module with a ``card()`` function
   (so a source checkout that was never pip-installed still finds ours);
3. :func:`register` at run time (a notebook, a test).

Cards are built only when asked for (``get_card``), so listing families imports nothing heavy. A
name claimed twice keeps the first claim (ours, then entry points in the order importlib.metadata
lists them; ``register`` wins over both) and logs which one was ignored.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from pathlib import Path

from edge.errors import ModelError, first_line
from edge.models.contract import ModelCard

log = logging.getLogger("edge.models")

GROUP = "edge.families"

_REGISTERED: dict[str, Callable[[], ModelCard]] = {}
_FOUND: dict[str, tuple[str, str]] | None = None  # name -> ("module:attr", where it came from)
_CARDS: dict[str, ModelCard] = {}


def register(name: str, factory: Callable[[], ModelCard]) -> None:
    """Add (or replace) a family at run time; ``factory()`` builds its card on first use. A name that is not a
    non-empty string without blanks or a callable that is not a factory is one ModelError here (``None`` broke
    every later listing and lookup with a TypeError from sorting the names)."""
    if not isinstance(name, str) or not name or name != name.strip() or any(c.isspace() for c in name):
        raise ModelError(f"register: a family's name is a non-empty string without blanks, got {name!r}")
    if not callable(factory):
        raise ModelError(f"register('{name}', ...): give a function that returns the family's ModelCard, got "
                         f"{type(factory).__name__}")
    _REGISTERED[name] = factory
    _CARDS.pop(name, None)


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (tests)."""
    _REGISTERED.pop(name, None)
    _CARDS.pop(name, None)


def _discover() -> dict[str, tuple[str, str]]:
    global _FOUND
    if _FOUND is not None:
        return _FOUND
    found: dict[str, tuple[str, str]] = {}

    def claim(name: str, target: str, origin: str) -> None:
        if name in found and found[name][0] != target:
            log.warning("model family '%s' from %s ignored: the name is taken by %s (%s)", name, origin,
                        found[name][0], found[name][1])
            return
        found.setdefault(name, (target, origin))

    import edge.models as pkg

    # ours first: an installed package cannot take over a family edge-deploy ships
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.ispkg and (Path(pkg.__path__[0]) / mod.name / "card.py").is_file():
            claim(mod.name, f"edge.models.{mod.name}.card:card", "edge.models")
    from importlib import metadata

    try:
        eps = metadata.entry_points(group=GROUP)
    except Exception as e:  # a broken distribution on sys.path must not hide every family
        log.warning("cannot read %s entry points: %s", GROUP, first_line(e))
        eps = ()
    for ep in eps:
        dist = getattr(ep, "dist", None)
        claim(ep.name, ep.value, f"entry point of {dist.name if dist else 'a package'}")
    _FOUND = found
    return found


def rescan() -> None:
    """Forget what discovery found (after installing a package in the same process)."""
    global _FOUND
    _FOUND = None
    _CARDS.clear()


def list_models() -> list[str]:
    """Names of every family this installation can load."""
    return sorted(set(_discover()) | set(_REGISTERED))


def get_card(name: str) -> ModelCard:
    """The card of a family, built once; ModelError naming the known families otherwise."""
    if not isinstance(name, str):  # a list was "unhashable type: 'list'"
        raise ModelError(f"a model family is named by a string (known: {', '.join(list_models())}), got "
                         f"{type(name).__name__}")
    if name in _CARDS:
        return _CARDS[name]
    if name in _REGISTERED:
        factory: Callable[[], ModelCard] = _REGISTERED[name]
        where = "register()"
    else:
        found = _discover()
        if name not in found:
            raise ModelError(f"unknown model '{name}' (known: {', '.join(list_models()) or 'none'})")
        target, where = found[name]
        mod_name, _, attr = target.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr or "card")
        except Exception as e:
            raise ModelError(f"model family '{name}' ({target}, from {where}) cannot be imported: "
                             f"{type(e).__name__}: {first_line(e)}") from None
    try:
        card = factory()
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"model family '{name}' ({where}): building its card failed: "
                         f"{type(e).__name__}: {first_line(e)}") from None
    if not isinstance(card, ModelCard):
        raise ModelError(f"model family '{name}' ({where}) did not return a ModelCard "
                         f"(got {type(card).__name__})")
    if card.name != name:
        raise ModelError(f"model family registered as '{name}' calls itself '{card.name}'")
    _CARDS[name] = card
    return card
