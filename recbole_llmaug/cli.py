"""Command line: ``python run_recbole_llmaug.py --model=SASRec --dataset=beauty [--key=value ...]``.

Same override syntax as RecBole's ``run_recbole.py``. Exit status: 0 done; 2 a user error (one
paragraph, no traceback); 3 an LLM/embedding service that kept failing; 130 interrupted (Ctrl-C: one
line saying what was kept; an interrupted training run still tests and records what it learned).
"""

import argparse
import sys
from pathlib import Path

from recbole_llmaug.errors import UserError

INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole_llmaug.py",
        description="Train and evaluate a recommender (ours or any RecBole model) with long-tail grouped "
        "metrics, or run an augmentor. Any other --key=value overrides a RecBole/property setting.",
    )
    parser.add_argument("--model", "-m", default=None, help="model name, e.g. SASRec, LightGCN, LLMESR")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name, e.g. ml-100k, beauty")
    parser.add_argument(
        "--config_files", nargs="+", default=None,
        help="extra yaml property files (space separated, or one quoted string; a path that contains spaces "
        "is taken whole when that file exists)",
    )
    parser.add_argument("--augment", default=None, help="run this augmentor instead of training (e.g. llmesr)")
    parser.add_argument("--tune", default=None, metavar="SPACE.yaml",
                        help="Ray Tune search over this space (properties/hyper/<Model>.yaml)")
    parser.add_argument("--ray-address", dest="ray_address", default=None,
                        help="existing Ray cluster (auto, <head>:6379, ray://<head>:10001); default: start Ray here")
    parser.add_argument("--resume", action="store_true", help="continue the search in the output folder")
    parser.add_argument("--tune-output", dest="tune_output", default=None,
                        help="search output folder (default ./ray_results/<model>-<dataset>)")
    return parser


def run_search(args, config_files, overrides):
    """``--tune``: a Ray Tune search whose trials are our objective function."""
    from recbole_llmaug.tune import run_tune

    result = run_tune(args.model, args.dataset, args.tune, config_files, overrides,
                      ray_address=args.ray_address, resume=args.resume, output_dir=args.tune_output)
    print(result["trials_table"])
    print(f"Best config: {result['best_config_file']}\nResults: {result['results_dir']}")


def split_config_files(values):
    """The files of ``--config_files``: each argument is one path when that file exists (so a path may
    contain spaces), else a space-separated list of paths (the documented "one quoted string" form).
    Every listed file that does not exist is reported at once."""
    files, missing = [], []
    for value in values or []:
        parts = [value] if Path(value).expanduser().is_file() else value.split()
        files += parts
        missing += [part for part in parts if not Path(part).expanduser().is_file()]
    if missing:
        raise UserError(
            f"--config_files: {', '.join(repr(name) for name in missing)} "
            f"{'does' if len(missing) == 1 else 'do'} not exist (relative paths are read from {Path.cwd()}). "
            "Several files are separated by spaces; a path that contains spaces is taken whole when that "
            "file exists, so check its spelling."
        )
    return files


def augment_summary(result, folder=None):
    """What ``--augment`` built or reused: one line per output, from the manifests the runner returned."""
    manifests = result.get("outputs") or {result.get("augmentor", "output"): result}
    where = f" (files in {folder})" if folder else ""
    lines = [f"Augmentor '{result.get('augmentor')}' on dataset '{result.get('dataset')}'{where}:"]
    for name, manifest in manifests.items():
        output = (manifest.get("output") or {}).get("file", "?")
        rows = (manifest.get("counts") or {}).get("rows")
        rows = f", {rows} rows" if rows is not None else ""
        if manifest.get("reused"):
            lines.append(f"  {name}: reused {output}{rows} (inputs and settings unchanged since "
                         f"{manifest.get('created_at', 'it was built')})")
            continue
        usage = manifest.get("usage") or {}
        work = ""
        if usage:
            texts = (f"{usage['unique_texts']} distinct texts: {usage.get('embedded_now', 0)} computed now in "
                     if "unique_texts" in usage else "")  # an embedding output; an LLM output counts calls only
            work = f", {texts}{usage.get('calls', 0)} model calls, {usage.get('cache_hits', 0)} cache hits"
            if usage.get("cost"):
                work += f", cost ~${usage['cost']:.4f}"
        lines.append(f"  {name}: built {output}{rows}{work}, {manifest.get('wall_time_s', 0):.1f} s")
    return "\n".join(lines)


def parse_overrides(unknown):
    """``--key=value`` pairs RecBole-style; anything else is an error worth reporting."""
    overrides = {}
    for arg in unknown:
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"Unrecognised argument '{arg}'. Settings are given as --key=value (for example --epochs=5).")
        key, value = arg[2:].split("=", 1)
        overrides[key] = value
    return overrides


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(unknown)
        config_files = split_config_files(args.config_files)
        if not args.dataset:
            raise UserError("No dataset given. Add --dataset=NAME (for example --dataset=ml-100k).")
        if args.augment:
            from recbole_llmaug.augment import run_augmentor
            from recbole_llmaug.config import load_settings

            model = args.model
            if model is None:  # a system's options (its outputs' too) live in its model's property file
                from recbole_llmaug.augment.outputs import system_of

                system = system_of([args.augment])
                model = system.model if system is not None else None
            settings = load_settings(args.dataset, model, config_files, overrides)
            if args.ray_address:  # shard the augmentation over that Ray cluster (recbole_llmaug/llm/sharding.py)
                settings["ray_address"] = args.ray_address
            if model:  # the model's type decides which split the training histories follow
                from recbole_llmaug.utils import get_model

                settings["MODEL_TYPE"] = get_model(model).type
            from recbole_llmaug.data.folders import augmented_folder

            print(augment_summary(run_augmentor(args.augment, settings), augmented_folder(settings)))
            return 0
        if not args.model:
            raise UserError("No model given. Add --model=NAME (for example --model=SASRec).")
        if (args.resume or args.ray_address or args.tune_output) and not args.tune:
            raise UserError("--resume, --ray-address and --tune-output belong to a search: add --tune=SPACE.yaml.")
        if args.tune:
            run_search(args, config_files, overrides)
            return 0
        from recbole_llmaug.quick_start import run_recbole_llmaug

        record = run_recbole_llmaug(args.model, args.dataset, config_files, overrides)
        if record.get("interrupted"):
            print(f"Interrupted: {record['tested']}. Run record: {record.get('results_file', 'not saved (no results_dir)')}.",
                  file=sys.stderr)
            return INTERRUPTED
        return 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:  # one line, not a traceback: what was kept says the message
        print(f"Interrupted. {interrupt}".rstrip(), file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
