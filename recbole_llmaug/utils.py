"""Lookups that try our package first and fall back to RecBole (the RecBole-GNN plugin pattern).

By name, for a model ``<Model>`` (file names are the model name lower-cased):
``recbole_llmaug/model/<type>_recommender/<model>.py`` -> ``<Model>``;
``recbole_llmaug/data/<model>.py`` -> ``<Model>Dataset`` (else RecBole's dataset for the model type);
``recbole_llmaug/trainer/<model>.py`` -> ``<Model>Trainer`` (else RecBole's trainer); every trainer
gets the long-tail grouped evaluation.
"""

import difflib
import importlib
import importlib.util

from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_llmaug.errors import UserError
from recbole_llmaug.trainer import with_longtail

MODEL_SUBMODULES = ("general_recommender", "sequential_recommender")


def _our_module(model_name):
    for submodule in MODEL_SUBMODULES:
        path = f"recbole_llmaug.model.{submodule}.{model_name.lower()}"
        if importlib.util.find_spec(path) is not None:
            return importlib.import_module(path)
    return None


def our_model_names():
    """Names of the models this package adds to RecBole."""
    names = []
    for submodule in MODEL_SUBMODULES:
        package = importlib.import_module(f"recbole_llmaug.model.{submodule}")
        names += [name for name in getattr(package, "__all__", [])]
    return names


def _recbole_model_names():
    import recbole.model as rb_model
    import pkgutil

    names = []
    for sub in pkgutil.iter_modules(rb_model.__path__):
        if not sub.name.endswith("_recommender"):
            continue
        try:  # exlib models need optional packages (lightgbm, xgboost)
            package = importlib.import_module(f"recbole.model.{sub.name}")
        except ImportError:
            continue
        names += [n for n in dir(package) if n[:1].isupper()]
    return names


def get_model(model_name):
    """Model class by name: ``recbole_llmaug.model.*.<name lower>`` first, then RecBole's."""
    module = _our_module(model_name)
    if module is not None and hasattr(module, model_name):
        return getattr(module, model_name)
    try:
        return recbole_get_model(model_name)
    except (ValueError, AttributeError, ImportError):
        known = our_model_names() + _recbole_model_names()
        close = difflib.get_close_matches(model_name, known, n=3, cutoff=0.5)
        suggestion = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(
            f"Unknown model '{model_name}'. It is neither one of ours ({', '.join(our_model_names()) or 'none'}) "
            f"nor a RecBole model.{suggestion} Model names are case sensitive, e.g. --model=SASRec."
        ) from None


def _own_class(package, model_name, suffix):
    """``<package>.<model lower>.<Model><suffix>`` if that module and class exist, else None."""
    path = f"{package}.{model_name.lower()}"
    if importlib.util.find_spec(path) is None:
        return None
    return getattr(importlib.import_module(path), f"{model_name}{suffix}", None)


def get_trainer(model_type, model_name):
    """Trainer class: our ``<Model>Trainer`` if we define one, else RecBole's; either way with
    long-tail grouped evaluation."""
    own = _own_class("recbole_llmaug.trainer", model_name, "Trainer")
    return with_longtail(own or recbole_get_trainer(model_type, model_name))


def get_dataset_class(model_name):
    """Our ``<Model>Dataset`` class, or None when RecBole's dataset for the model type serves."""
    return _own_class("recbole_llmaug.data", model_name, "Dataset")


def create_dataset(config):
    """Dataset object: our ``<Model>Dataset`` if we define one, else RecBole's."""
    dataset_class = get_dataset_class(config["model"])
    return dataset_class(config) if dataset_class is not None else recbole_create_dataset(config)


def needed_outputs(config):
    """The augmentor outputs the run of ``config`` needs before its dataset can be built."""
    dataset_class = get_dataset_class(config["model"])
    return tuple(dataset_class.needed_outputs(config)) if dataset_class is not None else ()
