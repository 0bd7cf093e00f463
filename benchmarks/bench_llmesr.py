"""Benchmark of LLM-ESR on Amazon Beauty: backbones with and without LLM-ESR, ablations, cost.

Each sub-command runs one fresh subprocess per (model, seed) so that peak memory is per run
(``benchmarks/harness``; this file only declares the models):

* ``timing``: seconds per training epoch (no evaluation) and peak memory, same data and batch size.
* ``run``: train + test through ``run_recbole_llmaug`` (leave-one-out, RecBole's full ranking or
  ``uni100``), grouped metrics (overall, tail/head users, tail/head items), several seeds, mean and
  spread. Writes ``benchmarks/results/llmesr[_<protocol>].md`` and ``.json``. ``--also_test uni100``
  tests the same best models under a second protocol too (``extra_test_modes``), as a second table
  in the same report: one training gives both tables.
* ``retest``: test saved runs again from their checkpoints (``--records``: the runs' JSON records)
  under further protocols (``--modes``, e.g. ``full uni100``), without retraining; ``full`` must
  give each run's recorded test result again, and the report says whether it does.
* ``logs``: the grouped validation table (best epoch of each run, mean and spread over seeds) rebuilt
  from ``<work_dir>/logs``, e.g. from a GPU machine's logs when records did not come back.

The dataset is read in place (``--data_path``, default ../shared/data) and never copied into the
repository: ``--work_dir`` gets symbolic links to its files plus the augmentor's outputs.

    python benchmarks/bench_llmesr.py timing --epochs 2
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol full
    python benchmarks/bench_llmesr.py run --epochs 30 --seeds 2020 2021 2022 --protocol uni100
    python benchmarks/bench_llmesr.py run --device gpu --jobs 12 --also_test uni100 ...   # on a GPU machine
    python benchmarks/bench_llmesr.py retest --records <records_dir>/*.json --modes full uni100 --results ...

Model names: RecBole backbones ``SASRec GRU4Rec BERT4Rec``; ``LLMESR-<backbone>``; ablations
``LLMESR-<backbone>-noSD`` (alpha 0), ``-noSem`` (no semantic view), ``-noCF`` (no collaborative
view), ``-randinit`` (random ID init), ``-prefix`` (RecBole's per-prefix training), ``-batchteacher``
(exact per-step teacher), ``-itemmean`` (user vectors for the similar users as the mean of their
training items' vectors, no user-text embedding) and ``-base`` (no semantic view, random init, no SD: the backbone alone,
trained the LLM-ESR way).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import BenchSpec, Variant, main, variant_grid  # noqa: E402

BACKBONES = ["SASRec", "GRU4Rec", "BERT4Rec"]
# LLM-ESR options that keep each backbone comparable with the RecBole baseline of the same name
BACKBONE_MATCH = {
    "SASRec": {"backbone": "SASRec"},
    "GRU4Rec": {"backbone": "GRU4Rec", "n_layers": 1, "hidden_dropout_prob": 0.3},  # as properties/model/GRU4Rec.yaml
    "BERT4Rec": {"backbone": "BERT4Rec", "mask_ratio": 0.2},  # as properties/model/BERT4Rec.yaml
}
ABLATIONS = {
    "": {},
    "noSD": {"alpha": 0.0},
    "noSem": {"use_semantic": False},
    "noCF": {"use_collaborative": False},
    "randinit": {"id_init": "random"},
    "prefix": {"train_mode": "prefix"},
    "batchteacher": {"teacher": "batch"},
    "base": {"use_semantic": False, "id_init": "random", "alpha": 0.0},
    "itemmean": {"user_emb_source": "item_mean"},
}
MAIN_MODELS = ["SASRec", "LLMESR-SASRec", "GRU4Rec", "LLMESR-GRU4Rec", "BERT4Rec", "LLMESR-BERT4Rec"]

SPEC = BenchSpec(
    title="LLM-ESR",
    slug="llmesr",
    script=__file__,
    description=__doc__,
    dataset="beauty",
    variants=[Variant(name, name) for name in BACKBONES] + variant_grid("LLMESR", "LLMESR", BACKBONE_MATCH, ABLATIONS),
    aliases={"LLMESR": "LLMESR-SASRec"},
    main_variants=MAIN_MODELS,
    default_variants=MAIN_MODELS + ["LLMESR-SASRec-noSD", "LLMESR-SASRec-noSem", "LLMESR-SASRec-noCF",
                                    "LLMESR-SASRec-randinit", "LLMESR-SASRec-base"],
    timing_variants=["SASRec", "LLMESR-SASRec", "LLMESR-SASRec-batchteacher", "LLMESR-SASRec-prefix",
                     "GRU4Rec", "LLMESR-GRU4Rec", "BERT4Rec", "LLMESR-BERT4Rec"],
    timing_reference="SASRec",
    # the interactions and item texts, and the augmentor's outputs when made elsewhere (--no_augment)
    data_files=("inter", "item", "user", "itememb", "useremb", "simuser"),
    # leave-one-out, chronological, as the LLM-ESR paper; the mode (full, uni100) comes from --protocol
    settings={"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"}},
)

if __name__ == "__main__":
    main(SPEC)
