"""ETA-VLA instructions: a route command and a short templated sentence, tokenised in numpy.

The vocabulary is a plain word list (stored in the bundle, so a deployed model reads exactly the words it
was trained with); the first ids are reserved: ``<pad>`` (0), ``<unk>`` (1) and one token per route
command. An instruction becomes ``[command token, word ids..., <pad>...]`` of a fixed length, so the graph
input has a static shape. Words outside the vocabulary are refused with a clear error by default
(``unknown="error"``), or mapped to ``<unk>`` when a caller asks for it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.errors import DataError

PAD, UNK = "<pad>", "<unk>"
COMMANDS = ("left", "straight", "right", "lane_left", "lane_right", "stop")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "left": ("turn left at the next junction", "take the next left", "go left at the intersection"),
    "straight": ("keep lane", "go straight through the junction", "follow the road", "keep going straight"),
    "right": ("turn right at the next junction", "take the next right", "go right at the intersection"),
    "lane_left": ("change lane left", "move to the left lane", "merge left"),
    "lane_right": ("change lane right", "move to the right lane", "merge right"),
    "stop": ("stop behind the car ahead", "come to a stop", "stop behind the vehicle in front"),
}
_WORD = re.compile(r"[a-z]+")


def default_vocabulary() -> list[str]:
    """Reserved tokens, the commands, then every template word (sorted: the ids are stable)."""
    words = sorted({w for ts in TEMPLATES.values() for t in ts for w in _WORD.findall(t)})
    return [PAD, UNK, *(f"<{c}>" for c in COMMANDS), *words]


def words_of(text: str) -> list[str]:
    """Lower-cased words of ``text`` as typed: letters of any script, digits and the marks combined with them (an
    accent typed as its own code point, a Devanagari vowel sign), the text NFC-normalised first; anything else
    separates words. Why: a word with a digit or a letter outside a-z is no word of the vocabulary and is named
    whole ("2nd" was named 'nd', "café" 'caf'; a combining accent was dropped and the word taken as known)."""
    import unicodedata

    words, cur = [], []
    for ch in unicodedata.normalize("NFC", text).lower():
        if (ch.isalnum() and ch != "_") or (cur and unicodedata.category(ch).startswith("M")):
            cur.append(ch)
        elif cur:
            words.append("".join(cur))
            cur = []
    if cur:
        words.append("".join(cur))
    return words


def check_vocabulary(cfg: dict[str, Any]) -> None:
    """The card's config rule for the vocabulary a bundle or checkpoint states: every word once, the
    padding, unknown and command tokens present (tokenizing looks them up), ``vocab_size`` its length (the
    embedding's rows). ValueError otherwise."""
    vocab = cfg["vocab"]
    dup = sorted(w for w, n in Counter(vocab).items() if n > 1)
    if dup:
        raise ValueError(f"vocab repeats {dup[:3]}")
    missing = [t for t in (PAD, UNK, *(f"<{c}>" for c in COMMANDS)) if t not in vocab]
    if missing:
        raise ValueError(f"vocab lacks the special tokens {missing}")
    if cfg["vocab_size"] != len(vocab):
        raise ValueError(f"vocab_size {cfg['vocab_size']} is not the vocab's length {len(vocab)}")


def _quoted(text: str, most: int = 60) -> str:
    """``text`` quoted for an error line: control characters escaped (a NUL printed raw made 'straight\\x00' read
    as 'straight'), cut to ``most`` characters (a 10-million-character instruction made a 20 MB "line")."""
    shown = repr(text[:most])
    return shown if len(text) <= most else f"{shown[:-1]}...{shown[-1]} ({len(text)} characters)"


def tokenize(command: str, text: str, vocab: Sequence[str], length: int, *, unknown: str = "error") -> np.ndarray:
    """int64 [length]: the command token, the words' ids, padding.

    ``unknown``: "error" (a word outside ``vocab`` is a :class:`DataError` naming it) or "unk" (it becomes
    ``<unk>``). Too many words is an error either way: the graph's input length is fixed at export.
    """
    index = {w: i for i, w in enumerate(vocab)}
    cmd = index.get(f"<{command}>")
    if cmd is None:
        raise DataError(f"unknown route command {_quoted(command)}: use one of {', '.join(COMMANDS)}")
    ids = [cmd]
    for w in words_of(text):
        if w in index:
            ids.append(index[w])
        elif unknown == "unk":
            ids.append(index[UNK])
        else:
            raise DataError(f"instruction {_quoted(text)}: the word {_quoted(w)} is not in the model's vocabulary")
    if len(ids) > length:
        raise DataError(f"instruction {_quoted(text)}: {len(ids) - 1} words, the model takes at most {length - 1}")
    return np.array(ids + [index[PAD]] * (length - len(ids)), dtype=np.int64)


def parse_instruction(text: str, vocab: Sequence[str], length: int) -> dict[str, str]:
    """A typed instruction -> ``{"command", "text"}``, checked against the model's vocabulary.

    Forms: ``COMMAND: sentence`` ("left: take the next left"), a bare ``COMMAND`` or ``COMMAND:`` with no
    words (its first template sentence), or one of the template sentences alone (its command is known). A word
    outside ``vocab`` or too many words is a DataError naming it.
    """
    import unicodedata

    hidden = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\t"), None)
    if hidden is not None:  # split the words the model read ("next\u200bleft": "next", "left") while the record kept
        # it, shown as "nextleft" (a review)
        raise DataError(f"instruction {_quoted(text)}: the invisible character U+{ord(hidden):04X} in it (type the "
                        "words with spaces)")
    head, colon, rest = text.partition(":")
    command = head.strip().lower().replace(" ", "_").replace("-", "_")
    if colon and words_of(rest):
        sentence = rest.strip()
    elif command in TEMPLATES:  # a bare command, or one with a colon and no words after it ("left:")
        # its first template sentence: the model was trained on a command with one of its sentences, never alone
        # (given "left:" with no words it barely turned where "left" turned)
        sentence = TEMPLATES[command][0]
    elif colon:
        sentence = ""  # an unknown command: tokenize names it
    else:
        said = " ".join(words_of(text))
        found = [c for c, ts in TEMPLATES.items() if said in ts]
        if not found:
            raise DataError(f"instruction {_quoted(text)}: start with the route command ({', '.join(COMMANDS)}), "
                            "e.g. 'left: turn left at the next junction'")
        command, sentence = found[0], text.strip()
    tokenize(command, sentence, vocab, length)  # refuses an unknown command, an unknown word, too many words
    return {"command": command, "text": sentence}
