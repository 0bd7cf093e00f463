"""Benchmark of LLMSeR on Amazon Beauty: backbones with and without LLMSeR, ablations, LLM cost.

Sub-commands as for every harness spec (``benchmarks/harness``): ``run`` (train + test in one subprocess
per (model, seed); leave-one-out; the model selected on full-ranking validation is tested under full
ranking and, with ``--also_test uni100``, under LLMSeR's sampled protocol, one training for both; grouped
metrics incl. LLMSeR's short (0,4) / medium [4,6) / long [6,inf) users), ``timing``, ``retest``, ``logs``.
Runs already recorded with the same settings are not trained again (``--reuse``).

By default only users with at most 3 training items are augmented (``augment_max_length: 3``: the
7,162 shortest Beauty users, 14,300 LLM calls) so that the LLM pass fits a day on a CPU; reports state
it. The augmentor's outputs are built before training (or reused: the LLM answers are cached, and a
pass cut short continues from the cache).

    python benchmarks/bench_llmser.py run --epochs 5 --stopping_step 5 --seeds 2020 2021 2022 --also_test uni100 \
        --llm_cache_dir ../runs/ls/cache
    python benchmarks/bench_llmser.py run --models LLMSeR-SASRec-noLLM LLMSeR-SASRec-emb --epochs 5 --also_test uni100

Model names: RecBole backbones ``SASRec GRU4Rec BERT4Rec``; ``LLMSeR-<backbone>`` (the LLM picks
pseudo-prior items by id, semantic filter, LLM-validated reliability); ablations ``-noARV`` (fixed
weight), ``-noLLM`` (the reverse model's top M, reliability from the forward model's top 1), ``-noFilter``
(the LLM's first M picks), ``-emb`` (embedding picker instead of the LLM, for both steps), ``-text``
(the official free-text answers + filter), ``-orig`` (inference from the original sequence).
Composition (LLM-ESR on LLMSeR's augmented sequences, under the same protocol): ``LLMESR-<backbone>`` and
``LLMESRSeR-<backbone>`` (``LLMESRSeR``: LLM-ESR trained with LLMSeR's pseudo-prior items and weights):

    python benchmarks/bench_llmser.py run --models SASRec LLMSeR-SASRec LLMESR-SASRec LLMESRSeR-SASRec \
        --epochs 5 --stopping_step 5 --seeds 2020 2021 2022 --also_test uni100 --llm_cache_dir ../runs/ls/cache
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import BenchSpec, Variant, main, variant_grid  # noqa: E402

BACKBONES = ["SASRec", "GRU4Rec", "BERT4Rec"]
ABLATIONS = {
    "": {},
    "noARV": {"llmser_arv": False},
    "noLLM": {"llmser_pseudo": "none", "llmser_reliability": "none"},
    "noFilter": {"llmser_pseudo": "llm-ids-nofilter"},
    "emb": {"llmser_pseudo": "embedding", "llmser_reliability": "embedding"},
    "text": {"llmser_pseudo": "llm-text"},
    "orig": {"llmser_inference": "original"},
}
MAIN_MODELS = ["SASRec", "LLMSeR-SASRec", "GRU4Rec", "LLMSeR-GRU4Rec", "BERT4Rec", "LLMSeR-BERT4Rec"]

SPEC = BenchSpec(
    title="LLMSeR",
    slug="llmser",
    script=__file__,
    description=__doc__,
    dataset="beauty",
    variants=[Variant(name, name) for name in BACKBONES]
    + variant_grid("LLMSeR", "LLMSeR", {b: {"backbone": b} for b in BACKBONES}, ABLATIONS)
    + variant_grid("LLMESR", "LLMESR", {b: {"backbone": b} for b in BACKBONES})
    + variant_grid("LLMESRSeR", "LLMESRSeR", {b: {"backbone": b} for b in BACKBONES}),
    aliases={"LLMSeR": "LLMSeR-SASRec"},
    main_variants=MAIN_MODELS,
    default_variants=MAIN_MODELS + ["LLMSeR-SASRec-noARV", "LLMSeR-SASRec-noLLM", "LLMSeR-SASRec-emb",
                                    "LLMSeR-SASRec-noFilter"],
    timing_variants=["SASRec", "LLMSeR-SASRec", "GRU4Rec", "LLMSeR-GRU4Rec", "BERT4Rec", "LLMSeR-BERT4Rec"],
    timing_reference="SASRec",
    data_files=("inter", "item", "itememb", "useremb", "simuser", "ccgcand", "arvcand", "pseudo.llm-ids",
                "pseudo.llm-ids-nofilter", "pseudo.llm-text", "pseudo.embedding", "pseudo.none", "arv.llm",
                "arv.embedding", "arv.none"),
    # leave-one-out, chronological; only users with <= 3 training items augmented (see the docstring)
    settings={"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"},
              "augment_max_length": 3},
    groups=("all", "tail_user", "head_user", "tail_item", "head_item", "short_user", "medium_user", "long_user"),
)

if __name__ == "__main__":
    main(SPEC)
