"""``edge models``: the model families installed here and what each card declares."""

from __future__ import annotations

import json
from typing import Any

from edge.cli import emit


def describe(name: str) -> dict[str, Any]:
    """What ``edge models`` shows for one family (or the one-line reason it cannot be loaded)."""
    from edge.errors import ModelError
    from edge.models import get_card

    try:
        card = get_card(name)
    except ModelError as e:
        return {"name": name, "error": str(e)}
    return {
        "name": card.name, "description": card.description, "configs": sorted(card.configs),
        "default_config": card.default_config,
        "graphs": {g.name: g.role for g in card.graphs.values()},
        "programs": {p.name: {"graphs": list(p.graphs), "description": p.description,
                              **({"host_stages": list(p.host_stages)} if p.host_stages else {}),
                              **({"gated_by": p.gated_by} if p.gated_by else {})} for p in card.programs},
        "sensors": {"required": list(card.sensors.required), "optional": list(card.sensors.optional)},
        "metric": card.metric.name + (f" ({card.metric.unit})" if card.metric.unit else "") if card.metric else None,
        "trainable": card.trainer is not None,
        "weights": {k: str(v) for k, v in card.checkpoints.items() if v.is_file()},
        "export_options": dict(card.export_options),
        "command": card.command.help if card.command is not None else None,
        # what `edge val --data PATH` reads for this family (None: only its held-out synthetic set)
        "labelled_data": card.data.labelled.formats if card.data is not None and card.data.labelled else None,
    }


def run_models(json_out: bool) -> None:
    from rich.table import Table

    from edge.cli import console as make_console
    from edge.models import list_models

    rows = [describe(n) for n in list_models()]
    if json_out:
        emit(json.dumps(rows))
        return
    t = Table(title="model families")
    for col in ("family", "configs", "programs (graphs)", "sensors", "metric", "weights"):
        t.add_column(col)
    from rich.markup import escape

    for r in rows:
        if "error" in r:  # escaped: "[video]" in a pip line was read as a style tag, "[/opt/..." crashed the table
            t.add_row(escape(r["name"]), f"[red]{escape(r['error'])}[/]", "", "", "", "")
            continue
        progs = "; ".join(f"{k} ({', '.join(v['graphs'])})" for k, v in r["programs"].items())
        sensors = ", ".join(r["sensors"]["required"]) + (f" [+{', '.join(r['sensors']['optional'])}]"
                                                         if r["sensors"]["optional"] else "")
        if r["command"]:
            sensors += f"; --command: {r['command']}"
        metric = (r["metric"] or "-") + (f"; edge val --data: {r['labelled_data']}" if r["labelled_data"] else "")
        t.add_row(*map(escape, (r["name"], ", ".join(r["configs"]), progs, sensors, metric,
                                ", ".join(r["weights"]) or "-")))
    make_console().print(t)
