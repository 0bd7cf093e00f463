"""Dataset folders: where a dataset and the augmentor's outputs live, the embedded ml-100k copy, and
clear errors for missing files or columns."""

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


def read_header(path):
    """Field names (without types) of an atomic file's header line."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    return [column.split(":")[0] for column in header]


def check_dataset(settings):
    """Fail early, with a fix, when the atomic files or the configured columns are missing."""
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
    if not isinstance(load_col, dict):
        return
    for suffix, columns in load_col.items():
        path = folder / f"{name}.{suffix}"
        if not path.is_file():
            raise UserError(
                f"load_col asks for columns of '{path.name}', but {path} does not exist. "
                f"Remove '{suffix}' from load_col or add the file."
            )
        present = read_header(path)
        missing = [column for column in columns if column not in present]
        if missing:
            raise UserError(
                f"Column(s) {missing} configured in load_col['{suffix}'] are not in {path} "
                f"(its header has {present}). Fix load_col in your property file or the file's header."
            )
