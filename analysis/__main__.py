"""``python -m analysis {plot,table,results,report,paper}``: plots, tables and reports from trace files only.

``plot RUN_OR_COMPARE_DIR... --out DIR [--round R] [--run RUN_DIR] [--each-run]`` writes
the PNGs of :data:`analysis.plots.PLOTS`. ``table COMPARE_DIR [--method pfl_tps]
[--format text|markdown] [--cells [--baseline K=V]]`` prints the claims table (or, with
``--cells``, the per-cell mean ± std and baseline ratios). ``report RUN_OR_COMPARE_DIR
--out report.html`` writes one self-contained HTML page. ``paper [--spec FILE] --out DIR``
runs the experiments of a paper spec (``cosim compare`` child processes, resumable) and
writes ``DIR/results.md`` (see :mod:`analysis.paper`). User errors print
``analysis: error: <message>`` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.io import is_comparison_dir, read_comparison
from analysis.paper import DEFAULT_SPEC
from analysis.plots import PLOTS, plot_all
from analysis.results import results_table
from analysis.table import format_cells, format_claims, parse_assignments

EXIT_OK = 0
EXIT_USAGE = 2


def _cmd_plot(args: argparse.Namespace) -> int:
    for path in plot_all(args.dirs, args.out, round_index=args.round, run=args.run, each_run=args.each_run):
        print(path)
    return EXIT_OK


def _cmd_table(args: argparse.Namespace) -> int:
    if not is_comparison_dir(args.dir):
        raise ValueError(f"{args.dir}: no comparison.parquet or comparison.csv (run `cosim compare` first)")
    comparison = read_comparison(args.dir)
    if args.cells:
        baseline = parse_assignments(args.baseline) if args.baseline else None
        print(format_cells(comparison, baseline, args.format))
    else:
        print(format_claims(comparison, args.method, args.format))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import build_report

    print(build_report(args.dir, args.out, method=args.method, round_index=args.round))
    return EXIT_OK


def _cmd_results(args: argparse.Namespace) -> int:
    runs = parse_assignments(",".join(args.runs))
    print(results_table(runs, args.format))
    return EXIT_OK


def _cmd_paper(args: argparse.Namespace) -> int:
    import json
    import shlex
    from pathlib import Path

    from analysis.paper import collect, compare_commands, load_spec, run_paper, write_figures
    from analysis.paper_tables import results_markdown

    spec = load_spec(args.spec)
    if args.dry_run:
        for _, _, argv in compare_commands(spec, args.out, args.workers):
            print(shlex.join(["python", *argv[1:]]))
        return EXIT_OK
    if not args.tables_only:
        run_paper(spec, args.out, args.workers, log=lambda line: print(line, flush=True))
    meta_path = Path(args.out) / "paper.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    frame = collect(spec, args.out)
    text = results_markdown(frame, spec.method, spec.target_accuracy, meta.get("run_wall_s"),
                            meta.get("cpu_count"), write_figures(spec, args.out), Path(args.out),
                            spec.convergence_rounds)
    target = Path(args.out) / "results.md"
    target.write_text(text, encoding="utf-8")
    print(target)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``analysis`` argument parser with its ``plot``, ``table``, ``results`` and ``report`` sub-commands."""
    parser = argparse.ArgumentParser(prog="analysis", description="Plots and tables from cosim trace directories.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plot = sub.add_parser("plot", help="write PNG plots", description=f"Write {', '.join(PLOTS)} (.png) to --out.")
    plot.add_argument("dirs", nargs="+", metavar="RUN_OR_COMPARE_DIR", help="run or comparison directories")
    plot.add_argument("--out", metavar="DIR", required=True, help="directory for the PNG files")
    plot.add_argument("--round", metavar="R", type=int, default=0, help="round shown by timeline.png (default 0)")
    plot.add_argument("--run", metavar="RUN_DIR", help="run for timeline.png and map.png (default: the first run)")
    plot.add_argument("--each-run", action="store_true", help="one line per run instead of per-cell means")
    plot.set_defaults(handler=_cmd_plot)
    table = sub.add_parser("table", help="print the claims table of a comparison",
                           description="Energy/time reduction % and accuracy gain (points) of --method "
                                       "against every other algorithm, in cells agreeing on the other varied keys.")
    table.add_argument("dir", metavar="COMPARE_DIR", help="directory written by `cosim compare`")
    table.add_argument("--method", default="pfl_tps", help="the algorithm under study (default pfl_tps)")
    table.add_argument("--format", choices=("text", "markdown"), default="text", help="table format")
    table.add_argument("--cells", action="store_true", help="print per-cell mean ± std and ratios instead")
    results = sub.add_parser("results", help="print the PFL-TPS results table from named run directories",
                             description="PFL-TPS against FedAvg, local and ablations: accuracy, bytes per update, "
                                         "FFL sparsity, energy and time ratios (pfl_tps=RUN fedavg=RUN required).")
    results.add_argument("runs", nargs="+", metavar="ROLE=RUN_DIR",
                         help="pfl_tps=..., fedavg=..., optional local=..., no_pruning=..., any LABEL=...")
    results.add_argument("--format", choices=("text", "markdown"), default="markdown", help="table format")
    results.set_defaults(handler=_cmd_results)
    report = sub.add_parser("report", help="write a one-page, self-contained HTML report",
                            description="One HTML page (figures embedded, no external files): scenario, summary, "
                                        "per-round table, plots and, for a comparison, the claims table.")
    report.add_argument("dir", metavar="RUN_OR_COMPARE_DIR", help="run or comparison directory")
    report.add_argument("--out", metavar="FILE", required=True, help="HTML file to write (e.g. report.html)")
    report.add_argument("--method", default="pfl_tps", help="the algorithm under study for the claims (default pfl_tps)")
    report.add_argument("--round", metavar="R", type=int, default=0, help="round shown by the timeline (default 0)")
    report.set_defaults(handler=_cmd_report)
    paper = sub.add_parser("paper", help="run the Results experiments and write results.md",
                           description="Run every (setting, method) of a paper spec as `cosim compare` (finished "
                                       "runs reused), then write OUT/results.md: mean ± 95% CI per method and "
                                       "paired tests of the spec's method against each other one, with figures "
                                       "under OUT/figures/<setting>/.")
    paper.add_argument("--spec", metavar="FILE", default=str(DEFAULT_SPEC), help="paper spec (default analysis/paper.yaml)")
    paper.add_argument("--out", metavar="DIR", required=True, help="directory for the comparisons and results.md")
    paper.add_argument("--workers", metavar="N", type=int, default=1,
                       help="runs at a time: N comparisons side by side, one run each (default 1)")
    paper.add_argument("--dry-run", action="store_true", help="print the cosim compare commands and stop")
    paper.add_argument("--tables-only", action="store_true", help="write results.md and the figures from finished comparisons")
    paper.set_defaults(handler=_cmd_paper)
    table.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]", help="baseline cell for --cells ratios")
    table.set_defaults(handler=_cmd_table)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m analysis``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        if args.debug:
            raise
        if isinstance(exc, FileNotFoundError) and exc.filename is not None and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        else:
            message = str(exc) if not isinstance(exc, KeyError) else f"missing column {exc}"
        for line in message.splitlines() or [type(exc).__name__]:
            print(f"analysis: error: {line}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
