"""README.md documents every command-line entry point and option, so that none gets lost again.

The lists come from the code, not from this file: the CLI's argparse parser, the scripts that have a
``__main__`` block (repository root and ``benchmarks/``) with their sub-commands, and the Makefile's
``.PHONY`` targets. A new option, script or target fails here until the README mentions it.
"""

import ast
import re
from pathlib import Path

import pytest

from recbole_llmaug.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def mentioned(word, text=README):
    """``word`` as a whole token: ``--tune`` is not found inside ``--tune-output``."""
    return re.search(rf"(?<![\w/.-]){re.escape(word)}(?![\w-])", text) is not None


def long_options():
    return sorted({option for action in build_parser()._actions for option in action.option_strings
                   if option.startswith("--")})


def _is_main_block(node):
    """``if __name__ == "__main__":`` (either quote style, either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    return (any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides)
            and any(isinstance(side, ast.Constant) and side.value == "__main__" for side in sides))


def scripts():
    """Repository-relative paths of the runnable scripts: top level and benchmarks/."""
    found = []
    for path in sorted([*ROOT.glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(_is_main_block(node) for node in tree.body):
            found.append(path.relative_to(ROOT).as_posix())
    return found


def sub_commands(script):
    """A script's sub-commands: the ``choices`` of a positional argument, or ``add_parser`` names, in
    the script or, for a spec on the benchmark harness, in the harness's command line."""
    text = (ROOT / script).read_text(encoding="utf-8")
    sources = [text]
    if "benchmarks.harness" in text:
        sources.append((ROOT / "benchmarks" / "harness" / "cli.py").read_text(encoding="utf-8"))
    found = set()
    for node in (node for source in sources for node in ast.walk(ast.parse(source))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        if node.func.attr == "add_parser":
            found.add(node.args[0].value)
        elif node.func.attr == "add_argument" and not node.args[0].value.startswith("-"):
            for keyword in node.keywords:
                if keyword.arg == "choices" and isinstance(keyword.value, (ast.List, ast.Tuple)):
                    found |= {item.value for item in keyword.value.elts if isinstance(item, ast.Constant)}
    return sorted(found)


def makefile_targets(phony_only):
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    if phony_only:
        return sorted({name for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for name in line.split()})
    return sorted(set(re.findall(r"^([\w.-]+):(?!=)", text, re.M)) - {".PHONY"})


def test_the_lists_are_found_in_the_code():
    """Guards the derivations themselves: an empty list would make the tests below pass vacuously."""
    assert {"--model", "--dataset", "--config_files", "--tune"} <= set(long_options())
    assert "run_recbole_llmaug.py" in scripts() and any(s.startswith("benchmarks/") for s in scripts())
    assert {"install", "demo", "test"} <= set(makefile_targets(phony_only=True))
    assert {"run", "retest"} <= set(sub_commands("benchmarks/bench_llmesr.py"))
    assert mentioned("--tune", "--tune=x") and not mentioned("--tune", "--tune-output=x")


@pytest.mark.parametrize("option", long_options())
def test_every_cli_option_is_in_the_readme(option):
    assert mentioned(option), f"README.md does not mention {option} of run_recbole_llmaug.py (see --help)"


@pytest.mark.parametrize("script", scripts())
def test_every_script_is_in_the_readme(script):
    assert mentioned(script), f"README.md does not mention the script {script}"


@pytest.mark.parametrize("script,command", [(script, command) for script in scripts()
                                            for command in sub_commands(script)])
def test_every_sub_command_is_in_the_readme(script, command):
    """As ``<script> <command>`` or as `` `<command>` `` (the benchmark list describes them that way)."""
    name = Path(script).name
    assert re.search(rf"(?:{re.escape(name)} |`){re.escape(command)}\b", README), (
        f"README.md does not mention the sub-command '{command}' of {script}")


@pytest.mark.parametrize("target", makefile_targets(phony_only=True))
def test_every_make_target_is_in_the_readme(target):
    assert re.search(rf"\bmake {re.escape(target)}\b", README), f"README.md does not mention `make {target}`"


def test_the_readme_names_only_targets_and_scripts_that_exist():
    targets = set(makefile_targets(phony_only=False))
    assert {name for name in re.findall(r"\bmake ([a-z][\w-]*)", README)} <= targets
    named = set(re.findall(r"(?<![\w/.-])(benchmarks/[\w/.-]+\.py)\b", README))
    assert {path for path in named if not (ROOT / path).is_file()} == set()
