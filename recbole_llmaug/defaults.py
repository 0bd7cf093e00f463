"""Where our property files are, and the defaults they hold.

Every default of this package lives in a yaml file under ``properties/`` (``overall.yaml`` for the
run, the LLM/embedding layer and the augmentor; ``model/<Model>.yaml`` for a model). Code never
repeats a default: a layer that is called with a hand-made settings dict (tests, benchmarks, a
user's script) falls back to :func:`overall_defaults`, i.e. to the same yaml.

``properties/`` sits at the top of the source checkout (RecBole's layout). A wheel (non-editable
``pip install .``) carries it inside the package as ``recbole_llmaug/properties`` (see setup.py).
"""

from functools import lru_cache
from pathlib import Path

import yaml

from recbole_llmaug.compat import recbole_yaml_loader
from recbole_llmaug.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent


def properties_dir() -> Path:
    """``properties/`` of an installed wheel, else of the source checkout."""
    for candidate in (PACKAGE_DIR / "properties", PACKAGE_DIR.parent / "properties"):
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise UserError(
        f"The property files (properties/overall.yaml) were found neither in {PACKAGE_DIR} nor in "
        f"{PACKAGE_DIR.parent}. Reinstall the package (pip install .) or run from a full source checkout."
    )


def read_yaml(path) -> dict:
    """Read one property file; a syntax error names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Config file '{path}' does not exist. Check the path given to --config_files.")
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.load(handle.read(), Loader=recbole_yaml_loader())
    except (OSError, UnicodeDecodeError) as error:  # unreadable: permissions, a binary file, not UTF-8
        raise UserError(f"Config file '{path}' cannot be read: {error}. Give a readable UTF-8 yaml file.") from None
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


@lru_cache(maxsize=None)
def _overall() -> dict:
    return read_yaml(properties_dir() / "overall.yaml")


def overall_defaults() -> dict:
    """A copy of ``properties/overall.yaml``: every default of the run, LLM layer and augmentor."""
    return dict(_overall())


def setting(settings, key):
    """``settings[key]``, or its ``overall.yaml`` default when the key is missing or None (``~``)."""
    value = settings.get(key)
    return _overall().get(key) if value is None else value
