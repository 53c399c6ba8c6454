"""``edge bench``: table to the terminal, JSON report and PNG plot beside the bundle."""

from __future__ import annotations

from pathlib import Path

from edge import jsonout
from edge.cli import emit
from edge.errors import EdgeError


def run_bench_cmd(bundle: Path, backends: list[str], rounds: int, warmup: int, threads: int, out: Path | None,
                  programs: list[str] | None, json_out: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edge.bench.runner import plot, run_bench
    from edge.cli import console as make_console
    from edge.cli import interval_cell
    from edge.files import atomic_write_text
    from edge.plans import RUN_MARK, RUN_NOTE

    console = make_console(stderr=json_out)
    folder = Path(out) if out is not None else Path(bundle).resolve().parent
    if folder.exists() and not folder.is_dir():
        raise EdgeError(f"{folder}: is a file; --out takes a folder")
    above = folder.absolute()
    while not above.exists() and above != above.parent:  # made after the run: a file on the way fails now
        above = above.parent
    if not above.is_dir():
        raise EdgeError(f"{folder}: cannot create the output folder ({above} is a file)")
    inside = Path(bundle).resolve()
    if folder.resolve() == inside or inside in folder.resolve().parents:
        # files the manifest does not list: the bundle then fails its own checks on a re-export to it
        raise EdgeError(f"{folder}: --out is inside the bundle {bundle}; write the report elsewhere")
    # the folder (or the one it would be made in) must take the report now, not after every round has run
    from edge.files import probe_write

    stem = f"{Path(bundle).resolve().name}_bench"
    png = folder / f"{stem}.png"
    try:  # the plot is a convenience: a thin install without matplotlib still gets the table and the JSON
        import matplotlib  # noqa: F401
    except Exception as e:
        from edge.deps import import_failure

        no_plot: str | None = import_failure("matplotlib", e)
    else:
        no_plot = None
    if no_plot is None and png.is_dir() and not png.is_symlink():  # found after every round: the table was lost
        raise EdgeError(f"{png}: is a folder, where edge bench writes its box plot; move it or give --out FOLDER")
    for name in (f"{stem}.json", *(() if no_plot is not None else (png.name,))):
        try:  # (the plot too: one of another user's in a sticky folder failed the command after every round)
            probe_write(above / name)
        except OSError as e:
            where = "beside the bundle" if out is None else "there"
            raise EdgeError(f"{folder}: cannot write the report {name} {where} ({e.strerror or e}); give --out "
                            "FOLDER") from None
    with console.status("benchmarking...") as status:
        report = run_bench(bundle, backends=backends, rounds=rounds, warmup=warmup, threads=threads,
                           programs=programs, say=lambda m: status.update(m))
    try:  # made once there is a report to put in it (as edge run --out makes its folder); a failed run makes none
        from edge.files import make_folder

        make_folder(folder.absolute())
    except OSError as e:
        raise EdgeError(f"{folder}: cannot create the output folder ({e.strerror or e})") from None
    # names built whole: with_suffix on 'model.v2_bench' would give 'model.json' (another file of the user's)
    written = folder / f"{stem}.json"
    # an earlier run's plot goes first: a run without matplotlib (or stopped while plotting) left the new report
    # beside the old box plot of other rounds and configurations
    if png.is_file() or png.is_symlink():
        png.unlink()
    atomic_write_text(written, jsonout.dumps(report, indent=1) + "\n")
    written_png = plot(report, png) if no_plot is None else None
    if json_out:
        emit(jsonout.dumps({k: v for k, v in report.items() if k != "rows"} |
                         {"rows": [{k: v for k, v in r.items() if k != "samples_ms"} for r in report["rows"]]}))
        return
    m = report["machine"]
    p8 = report.get("int8_gemm_peak_gops")
    t = Table(title=escape(f"{report['model']} batch 1, per program step (what edge run pays per input); GEMM peak "
                           f"fp32 {report['gemm_peak_gflops']:.0f} GFLOP/s"
                           + (f", int8 {p8:.0f} GOP/s" if p8 else "") + " here"))
    for col in ("config", "GMAC", "median ms", "p90 ms", "p99 ms", "steps/s", "GFLOP/s", "of peak", "vs torch",
                "95 % CI", "RSS +MB"):
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=col == "config")
    for r in report["rows"]:
        t.add_row(r["config"] + (RUN_MARK if r.get("edge_run") else ""), f"{r['gmacs']:.2f}",
                  f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}",
                  f"{r['p99_ms']:.2f}", f"{r['throughput_per_s']:.1f}", f"{r['gflops']:.1f}",
                  "-" if r["of_peak"] is None else f"{100 * r['of_peak']:.0f} %",
                  f"{r['speedup_vs_torch']:.2f}x" if r["speedup_vs_torch"] else "-",
                  interval_cell(r.get("speedup_ci95")),
                  f"{r['rss_delta_mb']:.0f}")
    console.print(t)
    if any(r.get("edge_run") for r in report["rows"]):
        console.print(RUN_NOTE, highlight=False, markup=False)
    if any(r["of_peak"] is None and r["precision"] != "bf16" for r in report["rows"]):
        console.print("of peak '-': bf16 rows, rows past this run's measured GEMM peak (a peak read low on a busy "
                      "machine, or kernels doing fewer operations than counted) and fp32 rows on --threads where "
                      "numpy's BLAS could not be held to that count", highlight=False)
    if any(r.get("speedup_ci95") for r in report["rows"]):
        console.print("95 % CI: the speed-up's bootstrap interval over this run's rounds, resampled in pairs (runs "
                      "minutes apart can differ by more: a shared machine's speed moves)", highlight=False)
    console.print(f"{m['cpu']}, {m['cores']} cores, {', '.join(m['isa']) or 'no SIMD extension detected'}: {m['int8']}",
                  highlight=False, markup=False)
    for s in report.get("skipped", []):
        console.print(f"[yellow]skipped[/] {s['config']}: {escape(s['reason'])}", highlight=False)
    console.print(f"wrote {written} and {written_png}" if written_png else
                  f"wrote {written} (no box plot: {no_plot or ''})",
                  highlight=False, markup=False)
