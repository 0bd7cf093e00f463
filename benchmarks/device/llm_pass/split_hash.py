"""The sha256 of LLMRec's training histories on Beauty under RecBole's split as this machine draws it.

The profile prompts are made from those histories, and the split depends on the installed RecBole, pandas
and torch: the lent machine's profile answers are worth asking only where its split is this checkout's.
``prepare.sh`` writes the hash here, ``run.sh`` compares it there before the profiles.

    python benchmarks/device/llm_pass/split_hash.py --data_path ../shared/data
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", required=True, help="the folder holding beauty/")
    args = parser.parse_args(argv)
    from recbole_llmaug.augment.files import DatasetFiles
    from recbole_llmaug.augment.systems.llmrec import train_histories
    from recbole_llmaug.config import load_settings
    from recbole_llmaug.utils import get_model

    with tempfile.TemporaryDirectory() as work:  # the split writes nothing there; the settings want a folder
        settings = load_settings("beauty", "LLMRec", [], {"data_path": args.data_path, "split_seed": 2020,
                                                          "augment_path": work})
        settings["MODEL_TYPE"] = get_model("LLMRec").type
        histories = train_histories(DatasetFiles(settings))
    digest = hashlib.sha256(json.dumps(histories, sort_keys=True).encode()).hexdigest()
    print(digest)
    return digest


if __name__ == "__main__":
    main()
