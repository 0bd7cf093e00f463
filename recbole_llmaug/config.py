"""Configuration: our property files layered the RecBole way, and a RecBole ``Config`` built from them.

Order (later wins): ``properties/overall.yaml`` -> ``properties/dataset/<dataset>.yaml`` ->
``properties/model/<model>.yaml`` -> the user's ``--config_files`` -> ``--key=value`` overrides.
RecBole's own defaults for its models sit underneath all of them.
"""

import ast
import os
from pathlib import Path

import yaml

from recbole_llmaug.compat import isolated_argv
from recbole_llmaug.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
PROPERTIES_DIR = REPO_ROOT / "properties"
DEFAULT_DATA_PATH = REPO_ROOT / "dataset_atomic"


def _yaml_loader():
    """RecBole's loader: reads ``1e-3`` as a float (plain PyYAML reads it as a string)."""
    from recbole.config import Config

    return Config._build_yaml_loader(None)


def read_yaml(path):
    """Read one property file; a syntax error names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Config file '{path}' does not exist. Check the path given to --config_files.")
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.load(handle.read(), Loader=_yaml_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(
            f"Config file '{path}' is not valid YAML{where}: {problem}. "
            "Fix the file (RecBole property files are flat 'key: value' YAML)."
        ) from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UserError(f"Config file '{path}' must hold 'key: value' pairs, not a {type(content).__name__}.")
    return content


def parse_override(text):
    """Turn a ``--key=value`` string into a Python value the way RecBole's command line does."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "~", "null"):
            return None
        return text


def property_files(dataset, model=None):
    """Our property files that apply to ``dataset`` and ``model``, in load order."""
    files = [PROPERTIES_DIR / "overall.yaml", PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"]
    if model:
        files.append(PROPERTIES_DIR / "model" / f"{model}.yaml")
    return [path for path in files if path.is_file()]


def load_settings(dataset, model=None, config_file_list=None, config_dict=None):
    """Merge every layer into one flat dict; ``data_path`` comes back absolute.

    Relative ``data_path``/``checkpoint_dir``/``results_dir`` are resolved against the current
    directory here, once, so that Ray workers (which change directory) see the same folders.
    """
    settings = {}
    for path in property_files(dataset, model) + [Path(p) for p in (config_file_list or [])]:
        settings.update(read_yaml(path))
    settings.update({key: parse_override(value) for key, value in (config_dict or {}).items()})
    settings["dataset"] = dataset
    if model:
        settings["model"] = model
    settings["data_path"] = str(Path(settings.get("data_path") or DEFAULT_DATA_PATH).expanduser().resolve())
    for key in ("checkpoint_dir", "results_dir", "augment_path"):
        if settings.get(key):
            settings[key] = str(Path(settings[key]).expanduser().resolve())
    return settings


def dataset_dir(settings):
    """Folder that holds ``<dataset>.inter`` and the other atomic files of the dataset."""
    return Path(settings["data_path"]) / settings["dataset"]


def augmented_folder(settings):
    """Folder of the augmentor's outputs: ``<augment_path>/<dataset>`` when set, else the dataset folder.

    A separate ``augment_path`` keeps derived files out of a shared or read-only data folder.
    """
    if settings.get("augment_path"):
        return Path(settings["augment_path"]) / settings["dataset"]
    return dataset_dir(settings)


def make_config(model, dataset, config_file_list=None, config_dict=None):
    """Build a RecBole ``Config`` for one of our models or any RecBole model.

    Checks the dataset's files first so that a missing file or column is reported clearly.
    """
    from recbole.config import Config

    from recbole_llmaug.data import check_dataset
    from recbole_llmaug.utils import get_model

    model_class = get_model(model)
    settings = load_settings(dataset, model_class.__name__, config_file_list, config_dict)
    check_dataset(settings)
    with isolated_argv():
        config = Config(model=model_class, dataset=dataset, config_dict=settings)
    # RecBole points 'ml-100k' at its bundled copy whatever data_path says; honour ours.
    config.final_config_dict["data_path"] = os.path.join(settings["data_path"], dataset)
    return config


def settings_from_config(config):
    """The flat settings dict of a built RecBole ``Config`` (``data_path`` back to the data root)."""
    settings = dict(config.final_config_dict)
    settings["data_path"] = str(Path(config["data_path"]).parent)
    return settings
