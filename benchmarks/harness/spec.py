"""What one benchmarked system declares: its named variants, dataset, settings and data files.

A variant is a row of the report: a display name bound to a model class and the config overrides
that make it (``LLMESR-GRU4Rec`` = ``LLMESR`` with ``backbone: GRU4Rec`` plus the GRU options that
keep it comparable with RecBole's ``GRU4Rec``). Names are declared, never parsed, so every name the
harness accepts is one a spec wrote down, and a record maps back to its name by its config.
"""

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

# Long-tail groups of every report row (``all`` is the ungrouped metric) and the metrics shown per group.
GROUPS = ("all", "tail_user", "head_user", "tail_item", "head_item")
METRICS = ("hit@10", "ndcg@10")


def user_error(message):
    """``recbole_llmaug.errors.UserError`` (imported here, not at module level: importing the package
    loads torch and RecBole, which the parent process, that only schedules children, never needs)."""
    from recbole_llmaug.errors import UserError

    return UserError(message)


@dataclass(frozen=True)
class Variant:
    """One benchmarked configuration: report name, model class name, config overrides for every run."""

    name: str
    model: str
    overrides: dict = field(default_factory=dict)

    def matches(self, record):
        """Whether a run record (``run_recbole_llmaug``'s: ``model`` and ``config``) is of this variant."""
        config = record.get("config") or {}
        return record.get("model") == self.model and all(config.get(k) == v for k, v in self.overrides.items())


def variant_grid(prefix, model, *axes):
    """Variants for every combination of the ``axes``: each axis maps a name part to overrides, ``""``
    for "nothing added"; a name is ``prefix`` and the non-empty parts joined with ``-``.

    ``variant_grid("LLMESR", "LLMESR", {"SASRec": {"backbone": "SASRec"}}, {"": {}, "noSD": {"alpha": 0.0}})``
    gives ``LLMESR-SASRec`` and ``LLMESR-SASRec-noSD``. Overrides of later axes win on a shared key."""
    variants = []
    for parts in product(*(axis.items() for axis in axes)):
        name = "-".join([prefix] + [part for part, _ in parts if part])
        overrides = {}
        for _, options in parts:
            overrides.update(options)
        variants.append(Variant(name, model, overrides))
    return variants


@dataclass
class BenchSpec:
    """Everything system-specific a benchmark script hands to :func:`benchmarks.harness.main`.

    * ``title``: report headings (``# <title> benchmark (run)``); ``slug``: default results stem
      (``benchmarks/results/<slug>``) and work folder; ``script``: the spec's file (the command line
      a report quotes, ``python benchmarks/<file> ...``); ``description``: its ``--help`` text.
    * ``variants``: every accepted name, in report order; ``aliases``: extra accepted names for a
      declared one. ``default_variants``: what ``run`` trains without ``--models``; ``main_variants``:
      queued before the others (the main comparison gives numbers first); ``timing_variants``:
      ``timing``'s default; ``timing_reference``: the variant the ``x <name>`` column divides by.
    * ``dataset`` (``--dataset`` default), ``data_files``: suffixes of the dataset's files linked into
      the work folder (inputs and augmented files made elsewhere; the variants' ``benchmark_filename``
      interaction files are linked too, ``linked_kinds``); the augmentor writes next to them.
      Augmentation itself is the model's: ``run_recbole_llmaug`` builds or reuses the outputs the model's
      ``<Model>Dataset`` needs (``needed_outputs``; ``--no_augment`` skips that, using the files as they are).
    * ``settings``: config of every run, under the variant's overrides; its ``eval_args`` get the
      run's ``mode`` (``--protocol``) added. ``split``: how the report names the split.
    * ``groups``/``metrics``: report columns; ``extra_tables``: further tables of the same runs, each
      ``(caption, groups, metrics)`` (e.g. a paper's cut-offs overall, then the long-tail groups); ``cli_defaults``: other defaults for the command line
      (e.g. ``{"batch_size": 2048}``).
    """

    title: str
    slug: str
    script: str
    dataset: str
    variants: list
    default_variants: list
    main_variants: list = field(default_factory=list)
    timing_variants: list = field(default_factory=list)
    timing_reference: str = None
    aliases: dict = field(default_factory=dict)
    data_files: tuple = ("inter", "item", "user")
    settings: dict = field(default_factory=dict)
    split: str = "leave-one-out"
    groups: tuple = GROUPS
    metrics: tuple = METRICS
    extra_tables: tuple = ()
    description: str = ""
    cli_defaults: dict = field(default_factory=dict)

    def __post_init__(self):
        names = [variant.name for variant in self.variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"{self.title}: variants declared twice: {', '.join(duplicates)}")
        self._by_name = dict(zip(names, self.variants))
        listed = [*self.default_variants, *self.main_variants, *self.timing_variants, *self.aliases.values()]
        undeclared = [name for name in dict.fromkeys(listed) if name not in self._by_name]
        if undeclared:  # a bug in the spec, not in the user's input: fail when the script loads
            raise ValueError(f"{self.title}: default, main, timing or alias names not among the variants: "
                             f"{', '.join(undeclared)}")

    @property
    def linked_kinds(self):
        """The suffixes the work folder links from ``--data_path``: ``data_files``, and the interaction files a
        variant reads through its ``benchmark_filename`` (``<dataset>.<part>.inter``, e.g. LLMRec's augmented
        ``llmrec_train``), so that a variant trained alone (``--models LightGCN-aug``) finds them rather
        than counting on another variant's augmentor run to have put them there first."""
        parts = [part for variant in self.variants for part in variant.overrides.get("benchmark_filename", ())]
        return tuple(dict.fromkeys([*self.data_files, *(f"{part}.inter" for part in parts)]))

    @property
    def command_prefix(self):
        """``python benchmarks/bench_x.py``: how reports quote the command that made them."""
        return f"python benchmarks/{Path(self.script).name}"

    def variant(self, name):
        """The declared :class:`Variant` called ``name`` (or an alias of it); a ``UserError`` listing
        the known names otherwise."""
        variant = self._by_name.get(self.aliases.get(name, name))
        if variant is None:
            known = " ".join(self._by_name) + (f" (aliases: {' '.join(self.aliases)})" if self.aliases else "")
            raise user_error(f"Unknown {self.title} variant '{name}'. Known variants: {known}. "
                              f"Pass names from this list to --models.")
        return variant

    def resolve(self, names):
        """Names as given on the command line -> canonical names (aliases resolved, duplicates dropped),
        every one checked before any run starts."""
        resolved = []
        for name in names:
            canonical = self.variant(name).name
            if canonical not in resolved:
                resolved.append(canonical)
        return resolved

    def name_of_record(self, record):
        """The variant name of a ``run_recbole_llmaug`` record: the declared variant of its model whose
        overrides its config matches, the most specific one when several do (``LLMESR-SASRec-base``
        over ``LLMESR-SASRec-noSD``, whose overrides it also has); the model name when none does."""
        matching = [variant for variant in self.variants if variant.matches(record)]
        if not matching:
            return record["model"]
        return max(matching, key=lambda variant: len(variant.overrides)).name

    def report_order(self, names):
        """``names`` sorted as reports list them: defaults first, then the other declared variants,
        then undeclared names alphabetically."""
        order = {name: i for i, name in enumerate(dict.fromkeys([*self.default_variants, *self._by_name]))}
        return sorted(names, key=lambda name: (order.get(name, len(order)), name))
