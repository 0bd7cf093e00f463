"""Dataset folders: where a dataset and the augmentor's outputs live, the embedded ml-100k copy, and
clear errors for missing or damaged files, missing columns and unwritable output folders."""

import os
import shutil
from pathlib import Path

from recbole_llmaug.defaults import PACKAGE_DIR, properties_dir
from recbole_llmaug.errors import UserError


def default_data_path() -> Path:
    """``dataset_atomic/`` of the source checkout; for an installed wheel, of the current directory."""
    props = properties_dir()
    if props.parent != PACKAGE_DIR:
        return props.parent / "dataset_atomic"
    return Path.cwd() / "dataset_atomic"


def dataset_dir(settings) -> Path:
    """Folder that holds ``<dataset>.inter`` and the other atomic files of the dataset."""
    return Path(settings["data_path"]) / settings["dataset"]


def augmented_folder(settings) -> Path:
    """Folder of the augmentor's outputs: ``<augment_path>/<dataset>`` when set, else the dataset folder.

    A separate ``augment_path`` keeps derived files out of a shared or read-only data folder.
    """
    if settings.get("augment_path"):
        return Path(settings["augment_path"]) / settings["dataset"]
    return dataset_dir(settings)

OBTAIN_HINTS = {
    "beauty": (
        "Amazon Beauty 5-core is not shipped with the code. Get the Amazon review data (2014) 5-core "
        "'Beauty' file, or RecBole's 'amazon-beauty' atomic download filtered to 5-core, convert it to "
        "beauty.inter (user_id:token, item_id:token, timestamp:float) and beauty.item (item_id:token, "
        "title:token, brand:token, categories:token_seq, price:float), and put both in "
        "dataset_atomic/beauty/, or point --data_path at the folder that contains beauty/ "
        "(for example --data_path=../shared/data)."
    ),
}


def bundled_ml100k_dir():
    """RecBole's wheel ships ml-100k (with movie titles); we use it as an offline default."""
    import recbole

    return Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def ensure_embedded_dataset(settings):
    """Copy ml-100k out of the installed RecBole package on first use, into our data folder."""
    folder = dataset_dir(settings)
    if settings["dataset"] != "ml-100k" or (folder / "ml-100k.inter").is_file():
        return
    if Path(settings["data_path"]) != default_data_path().resolve():
        return  # the user pointed elsewhere; do not write into their folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        shutil.copyfile(bundled_ml100k_dir() / name, folder / name)


# Atomic files RecBole reads besides .inter when they exist and load_col does not leave them out.
OPTIONAL_SUFFIXES = ("user", "item", "kg", "link", "net")


def files_read(settings, also=()):
    """Suffixes of the dataset's own atomic files that a run reads: ``.inter``; the ``load_col`` keys
    (or, without ``load_col``, every file RecBole loads when present); ``additional_feat_suffix``;
    and ``also`` (e.g. ``item`` for the augmentor, which reads item texts whatever load_col says)."""
    load_col = settings.get("load_col")
    extra = list(settings.get("additional_feat_suffix") or [])
    if isinstance(load_col, dict):
        suffixes = ["inter", *load_col, *also]
    else:
        suffixes = ["inter", *OPTIONAL_SUFFIXES, *extra, *also]
    folder, name = dataset_dir(settings), settings["dataset"]
    return [suffix for suffix in dict.fromkeys(suffixes) if (folder / f"{name}.{suffix}").is_file()]


def check_dataset(settings, also=()):
    """Fail early, with a fix, when the atomic files, their contents or the configured columns are wrong.

    Every atomic file the run reads (:func:`files_read`) is checked once per process by
    :func:`recbole_llmaug.augment.atomic.check_atomic_file`: header, field types, one value per field
    on every line, numbers in float fields. A damaged file is reported with its line and field
    before RecBole or the augmentor reads it (RecBole would fail far from the cause, or read it shifted).
    """
    from recbole_llmaug.augment.atomic import check_atomic_file

    ensure_embedded_dataset(settings)
    name = settings["dataset"]
    folder = dataset_dir(settings)
    inter_file = folder / f"{name}.inter"
    if not inter_file.is_file():
        hint = OBTAIN_HINTS.get(
            name,
            f"Put the RecBole atomic files ({name}.inter, optionally {name}.item/{name}.user) in "
            f"{folder}, or point --data_path at the folder that contains '{name}/'.",
        )
        raise UserError(f"Dataset '{name}' not found: {inter_file} does not exist. {hint}")
    load_col = settings.get("load_col") or {}
    if isinstance(load_col, dict):
        for suffix in load_col:
            path = folder / f"{name}.{suffix}"
            if not path.is_file():
                raise UserError(
                    f"load_col asks for columns of '{path.name}', but {path} does not exist. "
                    f"Remove '{suffix}' from load_col or add the file."
                )
    separators = {
        "separator": settings.get("field_separator") or "\t",
        "encoding": settings.get("encoding") or "utf-8",
        "seq_separator": settings.get("seq_separator") or " ",
    }
    headers = {suffix: check_atomic_file(folder / f"{name}.{suffix}", **separators)
               for suffix in files_read(settings, also)}
    if not isinstance(load_col, dict):
        return
    for suffix, columns in load_col.items():
        present = list(headers[suffix])
        missing = [column for column in columns or [] if column not in present]
        if missing:
            raise UserError(
                f"Column(s) {missing} configured in load_col['{suffix}'] are not in {folder / f'{name}.{suffix}'} "
                f"(its header has {present}). Fix load_col in your property file or the file's header."
            )


def check_output_folders(settings, keys=("checkpoint_dir", "results_dir", "log_dir")):
    """Folders a run writes into must be writable (or creatable) before it trains for hours: a run
    record that cannot be saved at the end would lose the run."""
    for key in keys:
        value = settings.get(key)
        if not value:
            continue
        folder = Path(value)
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(
                f"'{key}' is {folder}, which cannot be written ({existing} is "
                f"{'not a folder' if not existing.is_dir() else 'not writable'}). Set --{key}= to a writable folder."
            )
