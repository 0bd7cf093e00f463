"""The command line every benchmark script shares: ``run``, ``timing``, ``retest``, ``logs``."""

import argparse
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import reuse, runner

REPO_ROOT = Path(__file__).resolve().parents[2]


def eval_mode(value):
    """An eval mode RecBole understands: ``full`` ranking, or ``uni<N>``/``pop<N>`` sampled negatives."""
    if not re.fullmatch(r"full|(uni|pop)\d+", value):
        raise argparse.ArgumentTypeError(f"'{value}' is not an eval mode: use full, uni<N> (e.g. uni100) or pop<N>")
    return value


def build_parser(spec):
    """The parser of ``spec``'s script; its defaults (dataset, results stem, model lists) from the spec."""
    parser = argparse.ArgumentParser(prog=f"python benchmarks/{Path(spec.script).name}", description=spec.description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / f"recbole_llmaug_bench_{spec.slug}"),
                       help="links to the dataset, augmented files, checkpoints, run records, logs/")
    files.add_argument("--results", default=str(REPO_ROOT / "benchmarks" / "results" / spec.slug),
                       help="report stem: writes <results>[_<suffix>].md and .json")
    processes = argparse.ArgumentParser(add_help=False)
    processes.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    processes.add_argument("--jobs", type=int, default=1, help="runs at a time (each a subprocess; e.g. 12 on one GPU)")
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument("--models", nargs="+", default=None, metavar="VARIANT",
                          help=f"variants (known: {' '.join(variant.name for variant in spec.variants)})")
    training.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    training.add_argument("--epochs", type=int, default=30, help="epoch budget (same for every model)")
    training.add_argument("--stopping_step", type=int, default=10)
    training.add_argument("--batch_size", type=int, default=256, help="train_batch_size (rows per batch), every model")
    training.add_argument("--eval_batch_size", type=int, default=512, help="rows per evaluation batch (speed only; a general model's full ranking takes this // n_items users a batch)")
    training.add_argument("--data_path", default=str(REPO_ROOT.parent / "shared" / "data"),
                          help="folder holding <dataset>/ (read in place, linked into --work_dir)")
    training.add_argument("--dataset", default=spec.dataset)
    training.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu: CUDA when available")
    training.add_argument("--no_augment", action="store_true",
                          help="use the augmented files already in --work_dir as they are, without the augmentor's "
                               "freshness check (e.g. on a machine that has its outputs but not its inputs or models)")
    training.add_argument("--settings", default=None, metavar="YAML",
                          help="settings of every run, over the spec's and under the variant's and the command "
                               "line's (e.g. a Ray Tune search's best_config.yaml)")
    training.add_argument("--llm_cache_dir", default=None, help="llmaug_cache_dir for the augmentor (reuse embeddings)")

    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,timing,retest,logs}")
    run = commands.add_parser(
        "run", parents=[training, processes, files], help="train and test every variant and seed",
        description=f"Train and test each (variant, seed, protocol) in its own process; writes <results>.md/.json "
                    f"(<results>_<protocol> for a protocol other than full), updated after every run. Default "
                    f"--models: {' '.join(spec.default_variants)}.")
    run.add_argument("--protocol", nargs="+", type=eval_mode, default=["full"],
                     help="eval mode(s) of validation and test; several: each variant and seed trained once per mode")
    run.add_argument("--reuse", choices=reuse.MODES, default="same-code",
                     help="reuse a run recorded in a report next to --results with the same run key (model, "
                          "inputs, settings, seed) instead of training it: same-code (and the same code version), "
                          "same-config (any code version), none (train everything)")
    run.add_argument("--also_test", nargs="*", type=eval_mode, default=[], metavar="MODE",
                     help="also test the best model under these eval modes (e.g. uni100), one table each")
    run.add_argument("--recorded_only", action="store_true",
                     help="train nothing: the report from the recorded runs (--reuse), the others left pending "
                          "(e.g. the state of a benchmark that is still running elsewhere)")
    run.set_defaults(handler=runner.run)
    timing = commands.add_parser(
        "timing", parents=[training, processes, files], help="seconds per training epoch and peak memory",
        description=f"Seconds per bare training epoch (no evaluation) and peak memory, first seed only, --epochs "
                    f"epochs; writes <results>_timing.md/.json. Default --models: "
                    f"{' '.join(spec.timing_variants or spec.default_variants)}.")
    timing.add_argument("--protocol", type=eval_mode, default="full", help="eval mode in the runs' config")
    timing.set_defaults(handler=runner.timing)
    retest = commands.add_parser(
        "retest", parents=[processes, files], help="test saved runs again from their checkpoints",
        description="Test saved runs again from their checkpoints under --modes, without retraining; writes "
                    "<results>_retest.md/.json, which says whether `full` gives each run's recorded test again.")
    retest.add_argument("--records", nargs="+", required=True, metavar="JSON",
                        help="run records (<work_dir>/records/*.json) whose checkpoints to test again")
    retest.add_argument("--modes", nargs="+", type=eval_mode, default=["full", "uni100"], help="eval modes")
    retest.set_defaults(handler=runner.retest)
    logs = commands.add_parser(
        "logs", parents=[files], help="validation table from the run logs under <work_dir>/logs",
        description="Best validation epoch of each run (mean ± std over seeds) read from <work_dir>/logs, e.g. a "
                    "GPU machine's logs when records did not come back; writes <results>_valid_from_logs.md/.json.")
    logs.add_argument("--protocol", type=eval_mode, default="full", help="which runs' logs (their eval mode)")
    logs.set_defaults(handler=runner.logs)
    for sub in (run, timing, retest, logs):
        known = {action.dest for action in sub._actions}
        sub.set_defaults(**{key: value for key, value in spec.cli_defaults.items() if key in known})
    return parser


def main(spec, argv=None):
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the sub-command. A ``UserError`` (an unknown
    variant, a missing dataset or record) is printed as its one paragraph, exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(spec).parse_args(argv)
    command = " ".join([spec.command_prefix, *argv])
    try:
        args.handler(spec, args, command)
    except Exception as error:
        # UserError is looked up only now: importing recbole_llmaug loads torch, which the parent never needs.
        # An error raised as one has already imported it.
        errors = sys.modules.get("recbole_llmaug.errors")
        if errors is None or not isinstance(error, errors.UserError):
            raise
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(errors.UserError.exit_code) from None
