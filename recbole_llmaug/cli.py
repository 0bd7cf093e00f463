"""Command line: ``python run_recbole_llmaug.py --model=SASRec --dataset=beauty [--key=value ...]``.

Same override syntax as RecBole's ``run_recbole.py``; user errors print one paragraph and exit 2.
"""

import argparse
import sys

from recbole_llmaug.errors import UserError


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
        help="extra yaml property files (space separated, or one quoted string)",
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
        config_files = [name for item in (args.config_files or []) for name in item.split()]
        if not args.dataset:
            raise UserError("No dataset given. Add --dataset=NAME (for example --dataset=ml-100k).")
        if args.augment:
            from recbole_llmaug.augment import run_augmentor
            from recbole_llmaug.config import load_settings

            settings = load_settings(args.dataset, args.model, config_files, overrides)
            if args.ray_address:  # shard the augmentation over that Ray cluster (recbole_llmaug/llm/sharding.py)
                settings["ray_address"] = args.ray_address
            if args.model:  # the model's type decides which split the training histories follow
                from recbole_llmaug.utils import get_model

                settings["MODEL_TYPE"] = get_model(args.model).type
            run_augmentor(args.augment, settings)
            return 0
        if not args.model:
            raise UserError("No model given. Add --model=NAME (for example --model=SASRec).")
        if (args.resume or args.ray_address or args.tune_output) and not args.tune:
            raise UserError("--resume, --ray-address and --tune-output belong to a search: add --tune=SPACE.yaml.")
        if args.tune:
            run_search(args, config_files, overrides)
            return 0
        from recbole_llmaug.quick_start import run_recbole_llmaug

        run_recbole_llmaug(args.model, args.dataset, config_files, overrides)
        return 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
