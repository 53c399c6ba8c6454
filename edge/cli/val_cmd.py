"""``edge val``: the table to the terminal (or JSON), the report file, and exit 1 over a ``--max-drop``."""

from __future__ import annotations

import math
from pathlib import Path

from edge import jsonout
from edge.cli import emit


def run_val_cmd(bundle: Path, data: list[str], backends: list[str], programs: list[str] | None, max_drop: str | None,
                threads: int, out: Path | None, json_out: bool) -> None:
    import typer
    from rich.markup import escape
    from rich.table import Table

    from edge.cli import console as make_console
    from edge.cli import interval_cell
    from edge.files import atomic_write_text, check_target
    from edge.plans import RUN_MARK, RUN_NOTE
    from edge.val import over_budget, run_val

    if max_drop is not None:  # a bad budget is refused before any scoring
        from edge.calibration.precision import parse_max_drop

        absolute, relative = parse_max_drop(max_drop)
        if min(absolute, relative if relative is not None else 0.0) < 0:
            from edge.errors import DataError

            raise DataError(f"--max-drop {max_drop}: a drop budget is 0 or more (metric units, or a percentage)")
    if out is not None:
        from edge.files import check_outputs
        from edge.val import check_report_out

        check_target(out, "--out")
        if not Path(out).resolve().parent.is_dir():
            from edge.errors import DataError

            raise DataError(f"{out}: its folder does not exist (--out)")
        # the report must not replace a label file it scores, nor go into the bundle (its manifest, a stray file)
        check_outputs({"--out": out}, [], sealed=(Path(bundle),))  # nothing written into the bundle
        check_report_out(out, data)  # nor over the data it scores
        from edge.files import check_writable

        check_writable(out, "--out")  # now, not after the scoring
    console = make_console(stderr=json_out)
    with console.status("scoring...") as status:
        report = run_val(bundle, data, backends=backends, programs=programs, threads=threads,
                         say=lambda m: status.update(escape(m)))
    over = over_budget(report, max_drop) if max_drop is not None else []
    report["max_drop"] = max_drop
    report["over_budget"] = [r["config"] for r in over]
    if out is not None:
        atomic_write_text(out, jsonout.dumps(report, indent=1) + "\n")
    if json_out:
        emit(jsonout.dumps(report))
    else:
        unit = report["unit"]
        t = Table(title=escape(f"{report['model']}: {report['metric']} on {report['described']}"))  # '[x]' in paths
        for col in ("config", report["metric"], "95 % CI", "drop", "drop 95 % CI", "against", "also", "seconds"):
            t.add_column(col, justify="left" if col == "config" else "right", no_wrap=col == "config")
        for r in report["rows"]:
            drop = "-" if r["drop"] is None else f"{r['drop']:+.2f}{unit}"
            mark = " [red]over --max-drop[/]" if r in over else ""
            against = (r["reference_config"] or "-").split(":", 1)[-1]
            t.add_row(r["config"] + (RUN_MARK if r.get("edge_run") else ""), f"{r['value']:.2f}{unit}",
                      interval_cell(r.get("ci95")), drop + mark, interval_cell(r.get("drop_ci95"), signed=True),
                      against, _also(r["score"]), f"{r['seconds']:.1f}")
        console.print(t)
        if any(r.get("edge_run") for r in report["rows"]):
            console.print(RUN_NOTE, highlight=False, markup=False)
        if any(r.get("ci95") for r in report["rows"]):
            console.print("95 % CI: over the samples (a bootstrap, or Wilson's and Newcombe's for a pass/fail rate; a "
                          "drop's: the same samples for both configurations); what one sample more or less can move",
                          highlight=False)
        for s in report["skipped"]:
            console.print(f"[yellow]skipped[/] {s['config']}: {escape(s['reason'])}", highlight=False)
        for n in report.get("notes", ()):
            console.print(f"note: {n}", highlight=False, markup=False)
        if out is not None:
            console.print(f"wrote {out}", highlight=False, markup=False)
    if over:
        # every one named: a log that keeps stderr lost the others; one that is not a number first, said so
        worst = sorted(over, key=lambda r: -r["drop"] if math.isfinite(r["drop"]) else -math.inf)
        make_console(stderr=True).print(
            f"{len(over)} configuration(s) drop more than --max-drop {max_drop}: "
            + ", ".join(f"{r['config']} by {r['drop']:.2f}{report['unit']}" if math.isfinite(r["drop"]) else
                        f"{r['config']} (its {report['metric']} or its reference's is not a number)" for r in worst),
            highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _also(score: dict, most: int = 4) -> str:
    """The score's other top-level numbers (a family's FP / FN, RMSEs), the first ``most`` of them; not the metric
    again (a family may report it also as a fraction, 0.892 beside 89.24 %)."""
    value = score["value"]
    nums = [(k, v) for k, v in score.items() if k != "value" and isinstance(v, int | float) and not isinstance(v, bool)
            and not any(math.isclose(v * f, value, rel_tol=1e-9, abs_tol=1e-12) for f in (1, 100))]
    return ", ".join(f"{k} {v:.3g}" for k, v in nums[:most])

