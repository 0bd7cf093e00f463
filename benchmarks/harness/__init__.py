"""Benchmark harness shared by the seed systems' benchmark scripts (LLM-ESR now; LLMSeR, LLMRec next).

A script declares a :class:`BenchSpec` (its variants, dataset, settings, data files) and calls
:func:`main`; the harness gives it the command line (``run``, ``timing``, ``retest``, ``logs``), runs
each (variant, seed, protocol) in its own child process, ``--jobs`` at a time, and writes markdown and
JSON reports. The report writers (:mod:`benchmarks.harness.reports`) work on plain lists of run
records, so tables can also be built from records loaded elsewhere.

    from benchmarks.harness import BenchSpec, Variant, main, variant_grid

    SPEC = BenchSpec(title="LLMSeR", slug="llmser", script=__file__, dataset="beauty",
                     variants=[Variant("SASRec", "SASRec"),
                               *variant_grid("LLMSeR", "LLMSeR", {"SASRec": {"backbone": "SASRec"}},
                                             {"": {}, "noPrior": {"use_prior": False}})],
                     default_variants=["SASRec", "LLMSeR-SASRec", "LLMSeR-SASRec-noPrior"],
                     settings={"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"}})
    if __name__ == "__main__":
        main(SPEC)
"""

from benchmarks.harness import reports
from benchmarks.harness.cli import build_parser, main
from benchmarks.harness.spec import GROUPS, METRICS, BenchSpec, Variant, variant_grid

__all__ = ["BenchSpec", "GROUPS", "METRICS", "Variant", "build_parser", "main", "reports", "variant_grid"]
