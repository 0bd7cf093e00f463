"""Benchmark of LLMRec on MovieLens-100K: LightGCN vs LLMRec, the paper's ablations, and RecBole
general models trained on the LLM-augmented interaction file (the model-agnostic experiment).

Sub-commands as for every harness spec (``benchmarks/harness``): ``run`` (train + test in one
subprocess per (variant, seed)), ``timing``, ``retest``, ``logs``. Protocol: ``benchmarks/llmrec_protocol.yaml``
(RecBole's random 80/10/10 split per user drawn once under ``split_seed`` 2020, full ranking, the
paper's Recall/NDCG@10/20/50 and Precision@20, selection on validation NDCG@20), the same for every
variant and for the Ray Tune searches. Model seeds vary; the split, and so the one LLM pass, does not.

The augmentation is made once (``--augment=llmrec``: 4,238 LLM calls on ml-100k, 43 minutes on 2 cores,
cached) and read from ``--data_path``; the runs find it fresh and make no model call:

    python run_recbole_llmaug.py --augment=llmrec --dataset=ml-100k --split_seed=2020 \\
        --augment_path=../runs/lr100k/data --llmaug_cache_dir=../runs/lr100k/cache
    python benchmarks/bench_llmrec.py run --data_path ../runs/lr100k/data \\
        --llm_cache_dir ../runs/lr100k/cache --epochs 60 --seeds 2020 2021 2022 --jobs 2

Variant names: RecBole's ``LightGCN`` and ``BPR``; ``LightGCN-aug`` / ``BPR-aug`` (trained on
``llmrec_train.inter``: the training split plus the LLM's liked items, tested on RecBole's own valid
and test files); ``LLMRec`` and its ablations ``-noEdges`` (w/o augmented edges), ``-noProfile`` (w/o
user profiles), ``-noProfileAttr`` (w/o profiles and item attributes), ``-noPrune``, ``-noMAE``;
``LLMRec-paperPrune`` keeps the highest losses at rate 0.4, as the official code does on MovieLens;
``LLMRec-edgesOnly`` is LightGCN plus the augmented triples in its BPR batches, nothing else.
"""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import BenchSpec, Variant, main, variant_grid  # noqa: E402
from benchmarks.harness.spec import GROUPS, METRICS  # noqa: E402

PROTOCOL = yaml.safe_load((Path(__file__).resolve().parent / "llmrec_protocol.yaml").read_text())
AUGMENTED_FILES = {"benchmark_filename": ["llmrec_train", "llmrec_valid", "llmrec_test"]}
ABLATIONS = {
    "": {},
    "noEdges": {"llmrec_aug_edges": False},
    "noProfile": {"llmrec_user_profiles": False},
    "noProfileAttr": {"llmrec_user_profiles": False, "llmrec_item_attributes": False},
    "noPrune": {"llmrec_prune": "off"},
    "noMAE": {"llmrec_mae": False},
    "paperPrune": {"llmrec_prune": "paper_literal", "llmrec_prune_rate": 0.4},
    # LightGCN plus the augmented BPR triples and nothing else: the edges' share of any gain or loss
    "edgesOnly": {"llmrec_prune": "off", "llmrec_mae": False, "llmrec_omega1": 0.0, "llmrec_text_features": False,
                  "llmrec_item_attributes": False, "llmrec_user_profiles": False},
}
MAIN = ["LightGCN", "LLMRec", "LightGCN-aug", "BPR", "BPR-aug"]

SPEC = BenchSpec(
    title="LLMRec",
    slug="llmrec",
    script=__file__,
    description=__doc__,
    dataset="ml-100k",
    variants=[Variant("LightGCN", "LightGCN"), Variant("BPR", "BPR"),
              Variant("LightGCN-aug", "LightGCN", AUGMENTED_FILES), Variant("BPR-aug", "BPR", AUGMENTED_FILES)]
    + variant_grid("LLMRec", "LLMRec", ABLATIONS),
    main_variants=MAIN,
    default_variants=MAIN + [f"LLMRec-{name}" for name in ABLATIONS if name],
    timing_variants=["LightGCN", "LLMRec"],
    timing_reference="LightGCN",
    data_files=("inter", "item", "user", "itememb", "useremb", "lrcand", "lredge", "itemattr", "userprof", "jsonl"),
    settings=PROTOCOL,
    split="random 80/10/10 per user (split_seed 2020)",
    groups=("all",),
    metrics=("recall@10", "recall@20", "recall@50", "ndcg@10", "ndcg@20", "ndcg@50", "precision@20"),
    extra_tables=(("Long-tail groups (H@10 / N@10)", GROUPS, METRICS),),
    # A general model's full ranking scores eval_batch_size // n_items users per batch (RecBole's FullSortEvalDataLoader):
    # at 512, Beauty's 12,101 items give one user per batch and 22,363 batches whose results RecBole's collector
    # concatenates one by one (a validation took 72 s on 1 thread, 30 s at this size; the numbers are the same).
    cli_defaults={"batch_size": 2048, "eval_batch_size": 4_194_304,
                  "data_path": str(Path(__file__).resolve().parent.parent / "dataset_atomic")},
)

if __name__ == "__main__":
    main(SPEC)
