"""``simclr evaluate``: the dataset's standard protocol, the plots and the report, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import EvaluateCommandOptions, parse_label_fractions
from simclr.progress import progress_bar, show_progress
from simclr.settings import add_settings_flags, settings_from_args

if TYPE_CHECKING:  # imported when the command runs, so 'simclr --help' does not load torch
    from torch import nn

    from simclr.evaluation.session import EvalSession

EXAMPLES = (
    "simclr evaluate runs/cifar10-resnet18-20261123-101500",
    "simclr evaluate RUN_DIR --random-weights --no-plots   # the untrained architecture's numbers",
    "simclr evaluate RUN_DIR --label-fractions 0.01,0.1,1 --robustness   # InvCLR's studies",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "evaluate", "linear probe + kNN (or Spirograph regression), plots and the report of a run", EXAMPLES
    )
    add_run_arguments(parser)
    add_settings_flags(parser, EvaluateCommandOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    options = settings_from_args(EvaluateCommandOptions, args)
    show_progress()
    session = session_from_args(args)
    if options.checkpoint not in (None, "all"):  # a kept backbone: its results go to a folder of their own
        from simclr.evaluation.protocols.checkpoint_scan import kept_backbone_ref
        from simclr.evaluation.session import EvalSession

        session = EvalSession(kept_backbone_ref(session.ref, options.checkpoint), session.options)
    with session:
        if options.checkpoint == "all":
            _scan_kept_backbones(session, options)
        else:
            _evaluate_and_report(session, options)
    return 0


def _scan_kept_backbones(session: EvalSession, options: EvaluateCommandOptions) -> None:
    """``--checkpoint all``: kNN (and the linear probe) of every kept backbone, a table and a plot."""
    from simclr.evaluation.protocols.checkpoint_scan import scan_kept_backbones
    from simclr.reports.eval_plots import write_checkpoint_scan_plot

    with progress_bar("evaluate") as advance:
        scan = scan_kept_backbones(session.ref, session.options, linear=options.scan_linear, progress=advance)
        plot = write_checkpoint_scan_plot(scan, session.ref.eval.checkpoint_scan_plot)
    print(f"checkpoint scan: {scan.table} (plot: {plot})")


def _evaluate_and_report(session: EvalSession, options: EvaluateCommandOptions) -> None:
    """The evaluation of one backbone, with its progress, then its headlines and where they are."""
    from simclr.evaluation.results import headline

    projection = None
    if options.plots and options.map_layer == "projection":  # read before minutes of evaluation, not after
        from simclr.evaluation.inference.embed import load_projection_head

        projection = load_projection_head(session.ref, session.backbone.feature_dim)
    with progress_bar("evaluate") as advance:
        session.progress = advance
        results, report = _evaluate(session, options, projection)
    for key, entry in results.items():
        print(headline(key, entry))
    print(f"results: {session.ref.eval.metrics}")
    if report is not None:
        print(f"report: {report.resolve()}")


def _evaluate(
    session: EvalSession, options: EvaluateCommandOptions, projection: nn.Module | None
) -> tuple[dict[str, dict[str, Any]], Path | None]:
    """The standard protocol, the studies ``options`` ask for, then the plots and the report, each a stage of
    the session's progress; returns the results by key and the report written (if any)."""
    # imported when the command runs, and the studies' modules only when they are asked for
    from simclr.evaluation.protocols.standard import run_standard_protocol
    from simclr.evaluation.recording import record

    results = run_standard_protocol(session, tta=options.tta)
    if options.invariance:
        from simclr.evaluation.protocols.invariance import run_invariance

        with session.stage("invariance"):
            results["invariance"] = run_invariance(session, views=options.invariance_views)
        record(session, "invariance", results["invariance"])
    if options.label_fractions is not None:
        from simclr.evaluation.protocols.label_efficiency import run_label_efficiency

        fractions = parse_label_fractions(options.label_fractions)
        with session.stage("label_efficiency"):
            results["label_efficiency"] = run_label_efficiency(session, fractions)
        record(session, "label_efficiency", results["label_efficiency"])
    if options.robustness:
        from simclr.evaluation.protocols.robustness import run_robustness

        with session.stage("robustness"):
            results["robustness"] = run_robustness(session)
        record(session, "robustness", results["robustness"])
    report = None
    if options.plots:
        from simclr.reports.eval_plots import write_eval_plots
        from simclr.reports.html import write_report

        with session.stage("plots"):
            write_eval_plots(session, results, options, projection=projection)
            if session.ref.writes_to_run:
                report = write_report([session.ref.run.path], session.ref.eval.report)
    if session.ref.writes_to_run:  # each number went to the run's tracker as it was recorded; now the files
        from simclr.tracking import report_evaluation

        report_evaluation(session.ref.run, {}, [session.ref.eval.metrics, *([report] if report else [])])
    return results, report
