"""The Config layer: our property files layered the RecBole way, and a RecBole ``Config`` built from them.

Order (later wins): ``properties/overall.yaml`` -> ``properties/dataset/<dataset>.yaml`` ->
``properties/model/<model>.yaml`` -> the user's ``--config_files`` -> ``--key=value`` overrides.
RecBole's own defaults for its models sit underneath all of them. The yaml files are the only
place where our defaults are written (see :mod:`recbole_llmaug.defaults`).
"""

import ast
from pathlib import Path

from recbole_llmaug.compat import honour_data_path, isolated_argv, recbole_model_properties
from recbole_llmaug.data.folders import check_dataset, check_output_folders, dataset_dir, default_data_path
from recbole_llmaug.defaults import properties_dir, read_yaml
from recbole_llmaug.options import validate

__all__ = ["load_settings", "make_config", "parse_override", "property_files", "read_yaml", "settings_from_config"]


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
    folder = properties_dir()
    files = [folder / "overall.yaml", folder / "dataset" / f"{dataset}.yaml"]
    if model:
        files.append(folder / "model" / f"{model}.yaml")
    return [path for path in files if path.is_file()]


def _model_class(model):
    if not model:
        return None
    from recbole_llmaug.utils import get_model

    return get_model(model)


def model_options(model):
    """The model's own declared options (``<Model>.OPTIONS``), for validation."""
    return tuple(getattr(_model_class(model), "OPTIONS", ()))


def backbone_files(model, later_layers):
    """For a model that wraps a RecBole backbone (``config_from_backbone = True``, e.g. LLMSeR): the
    backbone's property files, RecBole's then ours, placed under the model's own file. The backbone is
    the last ``backbone`` value among the model's file, ``--config_files`` and the overrides."""
    if not getattr(_model_class(model), "config_from_backbone", False):
        return []
    backbone = None
    for values in later_layers:
        backbone = values.get("backbone", backbone)
    if not backbone:
        return []
    ours = properties_dir() / "model" / f"{backbone}.yaml"
    return [path for path in (recbole_model_properties(str(backbone)), ours) if path is not None and path.is_file()]


def composed_files(model):
    """For a model that composes others (``config_from_models``, e.g. LLMESRSeR): their property files, in
    the order it names them (a later one wins a key both set), placed under the model's own file."""
    names = getattr(_model_class(model), "config_from_models", ())
    return [path for path in (properties_dir() / "model" / f"{name}.yaml" for name in names) if path.is_file()]


def load_settings(dataset, model=None, config_file_list=None, config_dict=None):
    """Merge every layer into one flat dict, with every declared option checked; ``data_path`` comes
    back absolute.

    Relative ``data_path``/``checkpoint_dir``/``results_dir``/``log_dir``/``augment_path`` are resolved against
    the current directory here, once, so that Ray workers (which change directory) see the same folders.
    The options of :mod:`recbole_llmaug.options` and the model's own ``OPTIONS`` are validated here,
    before any work starts.
    """
    files = property_files(dataset, model) + [Path(p) for p in (config_file_list or [])]
    layers = [(str(path), read_yaml(path)) for path in files]
    overrides = {key: parse_override(value) for key, value in (config_dict or {}).items()}
    model_file = properties_dir() / "model" / f"{model}.yaml"
    at = next((index for index, path in enumerate(files) if path == model_file), len(property_files(dataset)))
    extra = composed_files(model) + backbone_files(model, [values for _, values in layers[at:]] + [overrides])
    layers[at:at] = [(str(path), read_yaml(path)) for path in extra]
    settings, origin = {}, {}
    for where, values in layers:
        settings.update(values)
        origin.update(dict.fromkeys(values, where))
    for key, value in (config_dict or {}).items():
        settings[key] = overrides[key]
        origin[key] = f"--{key}={value}" if isinstance(value, str) else "the config_dict passed in"
    validate(settings, model_options(model), origin)
    settings["dataset"] = dataset
    if model:
        settings["model"] = model
    settings["data_path"] = str(Path(settings.get("data_path") or default_data_path()).expanduser().resolve())
    for key in ("checkpoint_dir", "results_dir", "log_dir", "augment_path"):
        if settings.get(key):
            settings[key] = str(Path(settings[key]).expanduser().resolve())
    return settings


def make_config(model, dataset, config_file_list=None, config_dict=None):
    """Build a RecBole ``Config`` for one of our models or any RecBole model.

    Checks the dataset's files (once per process: header, field types, one value per field, numbers)
    and that the output folders can be written, so that a damaged file, a missing column or a record
    that could not be saved is reported before any work.
    """
    from recbole.config import Config

    from recbole_llmaug.utils import get_model

    model_class = get_model(model)
    settings = load_settings(dataset, model_class.__name__, config_file_list, config_dict)
    check_dataset(settings)
    check_output_folders(settings)
    with isolated_argv():
        config = Config(model=model_class, dataset=dataset, config_dict=settings)
    honour_data_path(config, dataset_dir(settings))
    return config


def settings_from_config(config):
    """The flat settings dict of a built RecBole ``Config`` (``data_path`` back to the data root)."""
    settings = dict(config.final_config_dict)
    settings["data_path"] = str(Path(config["data_path"]).parent)
    return settings
