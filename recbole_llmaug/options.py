"""One declaration per option of ours: its type, its range or allowed values, and its stage.

Defaults are not here: they live in ``properties/*.yaml`` only. :func:`validate` checks every
declared option present in a run's merged settings before any work starts (no augmentation, no
dataset loading), and fails with one paragraph naming the option, the bad value, where it came from
and what is allowed. A model's own options are declared next to it (``<Model>.OPTIONS`` in its model
file) and checked the same way.

``stage="augment"`` marks options that change the augmentor's outputs: a hyperparameter search may
not vary them per trial (the trials share one set of augmented files).
"""

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Iterable, Mapping, Optional, Tuple

from recbole_llmaug.errors import UserError


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # int | float | bool | str | choice | list | dict
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    open_minimum: bool = False  # minimum itself not allowed (e.g. a learning rate > 0)
    open_maximum: bool = False
    choices: Tuple = ()
    optional: bool = False  # ~ (None) allowed
    stage: str = "run"  # run | augment
    doc: str = ""

    def allowed(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(choice) for choice in self.choices)
        else:
            noun = {"int": "an integer", "float": "a number", "bool": "True or False", "str": "a string",
                    "list": "a list like [a, b]", "dict": "a mapping like {a: 1}"}[self.kind]
            bounds = []
            if self.minimum is not None:
                bounds.append(f"{'>' if self.open_minimum else '>='} {self.minimum:g}")
            if self.maximum is not None:
                bounds.append(f"{'<' if self.open_maximum else '<='} {self.maximum:g}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
        return text + (" (or ~ for the default behaviour)" if self.optional else "")

    def check(self, value):
        """The value, converted where harmless (an integral float for an int); None if it is not allowed."""
        if value is None:
            if not self.optional and self.kind == "choice" and "none" in self.choices:
                # `--llmser_pseudo=none` arrives as None (config.parse_override reads `none` as ~, as yaml does)
                return (True, "none")
            return (True, None) if self.optional else (False, None)
        kind = self.kind
        if kind == "bool":
            return (isinstance(value, bool), value)
        if kind == "choice":
            return (value in self.choices, value)
        if kind == "str":
            return (isinstance(value, str) and value != "", value)
        if kind == "list":
            return (isinstance(value, (list, tuple)), value)
        if kind == "dict":
            return (isinstance(value, dict), value)
        if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
            return (False, value)
        if kind == "int":
            if not isinstance(value, Integral):
                if not float(value).is_integer():
                    return (False, value)
                value = int(value)
        else:
            value = float(value)
        if self.minimum is not None and (value < self.minimum or (self.open_minimum and value == self.minimum)):
            return (False, value)
        if self.maximum is not None and (value > self.maximum or (self.open_maximum and value == self.maximum)):
            return (False, value)
        return (True, value)


def _int(name, minimum=None, **kw):
    return Option(name, "int", minimum=minimum, **kw)


def _float(name, minimum=None, maximum=None, **kw):
    return Option(name, "float", minimum=minimum, maximum=maximum, **kw)


def _bool(name, **kw):
    return Option(name, "bool", **kw)


def _str(name, **kw):
    return Option(name, "str", **kw)


# Options every run may carry: RecBole's training/evaluation keys that users set most, and ours.
COMMON_OPTIONS = (
    _int("seed"), _int("split_seed", optional=True, stage="augment"), _bool("reproducibility"), _bool("show_progress"), _bool("use_gpu"),
    _int("epochs", 1), _int("stopping_step", 1), _int("train_batch_size", 1), _int("eval_batch_size", 1),
    _float("learning_rate", 0, open_minimum=True), _float("weight_decay", 0),
    _int("MAX_ITEM_LIST_LENGTH", 1), Option("topk", "list"), Option("metrics", "list"),
    Option("extra_test_modes", "list", optional=True), Option("load_col", "dict", optional=True),
    _float("tail_user_threshold", 0, optional=True), _float("tail_item_threshold", 0, optional=True),
    Option("user_length_groups", "dict", optional=True),
    _str("checkpoint_dir"), _str("results_dir", optional=True), _str("log_dir", optional=True),
    # the LLM and embedding layer
    _str("llm_base_url", optional=True, stage="augment"), _str("llm_model", optional=True, stage="augment"),
    _str("llm_api_key_env", stage="augment"),
    _float("llm_temperature", 0, stage="augment"), _float("llm_top_p", 0, 1, stage="augment"),
    _int("llm_max_tokens", 1, stage="augment"), _int("llm_concurrency", 1, stage="augment"),
    _float("llm_timeout", 0, open_minimum=True, stage="augment"), _int("llm_max_retries", 0, stage="augment"),
    _bool("llm_retry_failed", stage="augment"),
    _float("llm_price_per_1k_input", 0, stage="augment"), _float("llm_price_per_1k_output", 0, stage="augment"),
    _int("llm_threads", 1, optional=True, stage="augment"),
    # throughput levers of the LLM stage (README "The LLM stage at dataset scale")
    _int("llm_parallel", 1, optional=True, stage="augment"), _bool("llm_cache_prompt", stage="augment"),
    _int("llm_selection_max_tokens", 1, optional=True, stage="augment"),
    Option("llm_selection_format", "choice", choices=("json", "labels"), stage="augment"),
    Option("llm_candidate_labels", "choice", choices=("letters", "numbers", "ids"), stage="augment"),
    _int("llm_title_max_chars", 0, stage="augment"),
    Option("picker", "choice", choices=("llm", "embedding", "random"), stage="augment"),
    _int("embedding_threads", 1, optional=True, stage="augment"),
    Option("user_emb_source", "choice", choices=("text", "item_mean"), stage="augment"),
    # many machines: the augmentation sharded over Ray tasks
    _str("ray_address", optional=True), _int("augment_shard_size", 1), _int("augment_cpus_per_task", 1),
    Option("embedding_backend", "choice", choices=("sentence-transformers", "openai"), stage="augment"),
    _str("embedding_model", optional=True, stage="augment"), _int("embedding_batch_size", 1, stage="augment"),
    _bool("embedding_normalize", stage="augment"), _str("llmaug_cache_dir", optional=True, stage="augment"),
    # the augmentor's outputs and texts
    _str("augment_path", optional=True, stage="augment"), _str("item_text_template", optional=True, stage="augment"),
    _str("item_title_field", stage="augment"), _int("user_text_max_items", 0, stage="augment"),
    _int("sim_user_topn", 1, stage="augment"), Option("item_attribute_fields", "list", stage="augment"),
)


def declared(extra: Iterable[Option] = ()) -> dict:
    return {option.name: option for option in tuple(COMMON_OPTIONS) + tuple(extra)}


def augment_stage_keys(extra: Iterable[Option] = ()) -> set:
    """Options whose value changes the augmentor's outputs."""
    return {name for name, option in declared(extra).items() if option.stage == "augment"}


def validate(settings: dict, extra: Iterable[Option] = (), origin: Optional[Mapping[str, str]] = None) -> dict:
    """Check every declared option present in ``settings`` (in place: integral floats become ints).

    ``origin``: where each key's value came from (a file, or '--key=value'), for the message."""
    origin = origin or {}
    for name, option in declared(extra).items():
        if name not in settings:
            continue
        ok, value = option.check(settings[name])
        if not ok:
            where = origin.get(name)
            source = f" (set in {where})" if where else ""
            raise UserError(
                f"Option '{name}' must be {option.allowed()}, got {settings[name]!r}{source}. "
                f"Fix it on the command line (--{name}=...) or in your yaml file."
            )
        settings[name] = value
    return settings


def validate_model_options(config, options: Iterable[Option]) -> dict:
    """A model's own ``options`` as its RecBole ``config`` holds them, checked with :func:`validate`.

    A run checks them before any work (``config.load_settings``); this covers a model built from a RecBole
    ``Config`` directly. Every option must be there (the model's yaml sets them all): a missing one reads
    as ``None``, which only an optional option allows."""
    options = tuple(options)
    return validate({option.name: config[option.name] for option in options}, options)
