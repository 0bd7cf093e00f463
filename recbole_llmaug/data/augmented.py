"""RecBole datasets that carry augmentor outputs to their model as tensors.

A model never opens a file: its ``<Model>Dataset`` says which outputs it needs under a config
(:meth:`AugmentedDataset.needed_outputs`, also what the run builds before training), loads each
with the loader declared next to the output (:mod:`recbole_llmaug.augment.outputs`), and exposes
the results in ``self.augmented`` (``name -> whatever the loader returns``), aligned with RecBole's
internal ids. The splits RecBole derives (``dataset.build()``) are copies that share it.
"""

from pathlib import Path

from recbole_llmaug.augment.outputs import get_output
from recbole_llmaug.data.folders import augmented_folder
from recbole_llmaug.errors import UserError


def augmented_folder_of(config) -> Path:
    """The augmentor's output folder for a built RecBole ``Config`` (whose ``data_path`` is the
    dataset folder itself)."""
    return augmented_folder({
        "augment_path": config["augment_path"],
        "dataset": config["dataset"],
        "data_path": str(Path(config["data_path"]).parent),
    })


class AugmentedDataset:
    """Mixin for a RecBole ``Dataset`` class (put it first: ``class X(AugmentedDataset, SequentialDataset)``)."""

    @classmethod
    def needed_outputs(cls, config) -> tuple:
        """Names of the augmentor outputs this dataset loads under ``config``; override."""
        return ()

    def __init__(self, config):
        super().__init__(config)
        self.augmented = self.load_augmented(config)

    def load_augmented(self, config) -> dict:
        folder = augmented_folder_of(config)
        loaded = {}
        for name in self.needed_outputs(config):
            output = get_output(name)
            path = folder / f"{config['dataset']}.{output.suffix}"
            if not path.is_file():
                raise UserError(
                    f"{config['model']} needs the augmentor output '{name}' ({output.doc}), but {path} does not "
                    f"exist. Build it with: run_recbole_llmaug.py --augment={name} --dataset={config['dataset']} "
                    "(a training run through run_recbole_llmaug.py builds it itself), or set augment_path to the "
                    "folder that holds it."
                )
            self.logger.info("%s: loading augmented %s from %s", type(self).__name__, name, path)
            loaded[name] = output.load(path, self)
        return loaded

    def augmented_output(self, name: str):
        """The loaded output ``name``; a clear error when this config did not load it."""
        if name not in self.augmented:
            raise UserError(
                f"The model asked its dataset for the augmentor output '{name}', which "
                f"{type(self).__name__}.needed_outputs() did not load under this config; the two disagree on "
                "which options need it."
            )
        return self.augmented[name]
