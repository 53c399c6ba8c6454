"""No module outside ``edge/models/<family>/`` names a model family: the core only asks the card.

The words are the families' names (the folders of edge/models plus the shipped families, as planned in
the issues) and the names of their own data formats and metrics. Comments and docstrings count too: a
core doc that says "lane" is a core that thinks in lanes.
"""

from __future__ import annotations

import re
from pathlib import Path

EDGE = Path(__file__).resolve().parents[1] / "edge"
SHIPPED = {"lane": ("lanes?", "tusimple", "ufld"), "pulsar": ("pulsar(-net)?",), "nativecross": ("nativecross",),
           "etavla": ("eta-?vla", "etavla")}


def family_folders() -> set[str]:
    """Folders with a card, and the planned families' folders while their card is still being built."""
    return ({p.parent.name for p in (EDGE / "models").glob("*/card.py")}
            | {f for f in SHIPPED if (EDGE / "models" / f / "__init__.py").is_file()})


def words() -> re.Pattern[str]:
    alts = [a for v in SHIPPED.values() for a in v] + sorted(family_folders())
    return re.compile(r"\b(" + "|".join(alts) + r")\b", re.IGNORECASE)


def offenders(root: Path, pattern: re.Pattern[str], skip: set[str]) -> list[str]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or "__pycache__" in rel.parts or p.suffix not in (".py", ".toml", ".txt", ".json"):
            continue
        if len(rel.parts) >= 2 and rel.parts[0] == "models" and rel.parts[1] in skip:
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            m = pattern.search(line)
            if m:
                out.append(f"edge/{rel}:{i}: {m.group(0)!r} in {line.strip()[:80]}")
    return out


def test_core_names_no_family() -> None:
    assert "lane" in family_folders()
    bad = offenders(EDGE, words(), family_folders())
    assert not bad, "family named outside its folder:\n" + "\n".join(bad)


def test_the_check_catches_a_planted_name(tmp_path: Path) -> None:
    (tmp_path / "models" / "lane").mkdir(parents=True)
    (tmp_path / "models" / "lane" / "card.py").write_text("name = 'lane'  # fine here\n")
    (tmp_path / "stream").mkdir()
    (tmp_path / "stream" / "task.py").write_text('"""Decodes TuSimple rows."""\nx = 1\n')
    (tmp_path / "cli.py").write_text("if model != 'lane':\n    pass\nplanes = 2  # not a family\n")
    bad = offenders(tmp_path, words(), {"lane"})
    assert [b.split(":")[0] + ":" + b.split(":")[1] for b in bad] == ["edge/cli.py:1", "edge/stream/task.py:1"]
