"""``simclr evaluate``: the dataset's standard protocol, the plots and the report, in one command."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_run_arguments, session_from_args, show_progress


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate", help="linear probe + kNN (or Spirograph regression), plots and report.html for a run"
    )
    add_run_arguments(parser)
    parser.add_argument("--method", choices=("tsne", "umap"), default="tsne", help="2-D map of the test embeddings")
    parser.add_argument(
        "--tta", type=int, default=0, metavar="N", help="average the features of N augmented views (0: none)"
    )
    parser.add_argument("--no-plots", action="store_true", help="numbers only: no plots and no report")
    parser.add_argument(
        "--invariance",
        action="store_true",
        help="also measure invariance to the augmentation: conditional variance and how well a linear "
        "map predicts the view parameters (Foster et al. 2020); lower = more invariant",
    )
    parser.add_argument(
        "--invariance-views", type=int, default=10, help="views per test image for the conditional variance"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.errors import UserError
    from simclr.evaluation.results import headline
    from simclr.evaluation.standard import run_standard_protocol

    if args.tta == 1 or args.tta < 0:
        raise UserError(f"--tta {args.tta}: pass 0 (no test-time augmentation) or a number of views >= 2")
    show_progress()
    session = session_from_args(args)
    results = run_standard_protocol(session, tta=args.tta)
    if args.invariance:
        from simclr.evaluation.invariance import run_invariance

        if args.invariance_views < 2:
            raise UserError(f"--invariance-views must be >= 2 to have a variance, got {args.invariance_views}")
        results["invariance"] = run_invariance(session, views=args.invariance_views)
        session.record("invariance", results["invariance"])
    report = None
    if not args.no_plots:
        from simclr.reports.eval_plots import write_eval_plots
        from simclr.reports.html import REPORT_FILE, write_report

        write_eval_plots(session, results, method=args.method)
        if session.ref.eval_dir == session.ref.run_dir / "eval":
            report = write_report([session.ref.run_dir], session.ref.eval_dir / REPORT_FILE)
    for key, entry in results.items():
        print(headline(key, entry))
    print(f"results: {session.ref.eval_dir / 'metrics.json'}")
    if report is not None:
        print(f"report: {report.resolve()}")
    return 0
