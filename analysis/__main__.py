"""``python -m analysis {plot,table,results,report}``: plots, tables and reports from trace files only.

``plot RUN_OR_COMPARE_DIR... --out DIR [--round R] [--run RUN_DIR] [--each-run]`` writes
the PNGs of :data:`analysis.plots.PLOTS`. ``table COMPARE_DIR [--method pfl_tps]
[--format text|markdown] [--cells [--baseline K=V]]`` prints the claims table (or, with
``--cells``, the per-cell mean ± std and baseline ratios). ``report RUN_OR_COMPARE_DIR
--out report.html`` writes one self-contained HTML page. User errors print
``analysis: error: <message>`` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.io import is_comparison_dir, read_comparison
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
    table.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]", help="baseline cell for --cells ratios")
    table.set_defaults(handler=_cmd_table)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m analysis``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (FileNotFoundError, ValueError, KeyError) as exc:
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
