"""The one declaration of every augmentor output, and the registry the stage and the datasets share.

An :class:`Output` says everything about one file: its name (what ``--augment=`` and datasets call it),
file suffix (``<dataset>.<suffix>``), header, what its freshness depends on, how to build it and how a
RecBole dataset loads it. A :class:`System` names the outputs one published system needs (``llmesr``).

Shared outputs are declared in :mod:`recbole_llmaug.augment.text_embeddings`; each system declares
its own outputs and its group in ``recbole_llmaug/augment/systems/<system>.py`` (module attributes
``OUTPUTS`` and ``SYSTEM``), found here by walking that package: adding a system touches no file here.
"""

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from recbole_llmaug.errors import UserError

SHARED_MODULES = ("recbole_llmaug.augment.text_embeddings",)
SYSTEMS_PACKAGE = "recbole_llmaug.augment.systems"


@dataclass(frozen=True)
class Output:
    """One augmentor output file.

    ``fingerprint(files) -> dict``: everything the file depends on (input hashes, versions, settings);
    it is rebuilt when this changes. ``build(files, path) -> dict``: writes the file and returns the
    manifest body. ``load(path, dataset)``: the file as tensors aligned with the RecBole dataset's ids.
    """

    name: str
    suffix: str
    header: Tuple[str, ...]
    fingerprint: Callable
    build: Callable
    load: Callable
    depends_on: Tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class System:
    """The outputs one system needs, built in this order (dependencies are added by :func:`expand`).

    ``split``: the RecBole split its training histories follow when no model says otherwise
    ('sequential' for sequential recommenders, 'general' for the random/ordered split of general ones).
    ``model``: the model whose property file holds the system's augmentation options (read when
    ``--augment=<system>`` is run without ``--model``).
    ``select(settings) -> names``: for a system whose settings choose among its outputs (LLMSeR's
    ``llmser_pseudo`` and ``llmser_reliability``), the outputs ``--augment=<system>`` builds under those
    settings, i.e. what its model then trains on; ``outputs`` are what it builds under the defaults.
    """

    name: str
    outputs: Tuple[str, ...]
    split: str = "sequential"
    model: Optional[str] = None
    doc: str = ""
    select: Optional[Callable] = None

    def outputs_under(self, settings) -> Tuple[str, ...]:
        return tuple(self.select(settings)) if self.select is not None else self.outputs


@dataclass
class Registry:
    outputs: Dict[str, Output] = field(default_factory=dict)
    systems: Dict[str, System] = field(default_factory=dict)
    owners: Dict[str, str] = field(default_factory=dict)  # output -> the system declared in its module

    def add_module(self, module) -> None:
        system = getattr(module, "SYSTEM", None)
        for output in getattr(module, "OUTPUTS", ()):
            if output.name in self.outputs or output.name in self.systems:
                raise ValueError(f"augmentor output '{output.name}' is declared twice ({module.__name__})")
            self.outputs[output.name] = output
            if system is not None:
                self.owners[output.name] = system.name
        if system is not None:
            if system.name in self.systems or system.name in self.outputs:
                raise ValueError(f"augmentation system '{system.name}' is declared twice ({module.__name__})")
            self.systems[system.name] = system


_registry: Optional[Registry] = None


def registry() -> Registry:
    """Every declared output and system (imported once, on first use)."""
    global _registry
    if _registry is None:
        found = Registry()
        for name in SHARED_MODULES:
            found.add_module(importlib.import_module(name))
        package = importlib.import_module(SYSTEMS_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
            found.add_module(importlib.import_module(f"{SYSTEMS_PACKAGE}.{info.name}"))
        for output in found.outputs.values():
            for dependency in output.depends_on:
                if dependency not in found.outputs:
                    raise ValueError(f"output '{output.name}' depends on undeclared '{dependency}'")
        for system in found.systems.values():
            for member in system.outputs:
                if member not in found.outputs:
                    raise ValueError(f"system '{system.name}' names undeclared output '{member}'")
        _registry = found
    return _registry


def known_names() -> List[str]:
    return sorted(registry().outputs) + sorted(registry().systems)


def get_output(name: str) -> Output:
    outputs = registry().outputs
    if name not in outputs:
        raise UserError(f"Unknown augmentor output '{name}'. Choose one of {sorted(outputs)}.")
    return outputs[name]


def system_of(names: Iterable[str]) -> Optional[System]:
    """The system among ``names``, or the one whose module declares one of them (``llmrec_user_profiles``:
    ``llmrec``), if any: it says which split to follow by default and which model's property file holds
    the options, so that one output built alone reads the settings its system's run would (shared outputs
    such as ``item_emb`` have none)."""
    found = registry()
    for name in names:
        owner = name if name in found.systems else found.owners.get(name)
        if owner is not None:
            return found.systems[owner]
    return None


def expand(names: Iterable[str], settings: Mapping) -> List[str]:
    """Output names with systems unfolded (into the outputs ``settings`` select, :meth:`System.outputs_under`)
    and dependencies first, each once."""
    reg = registry()
    ordered: List[str] = []

    def visit(name):
        if name in reg.systems:
            for member in reg.systems[name].outputs_under(settings):
                visit(member)
            return
        if name not in reg.outputs:
            raise UserError(f"Unknown augmentor '{name}'. Choose one of {known_names()}, e.g. --augment=llmesr.")
        for dependency in reg.outputs[name].depends_on:
            visit(dependency)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered
