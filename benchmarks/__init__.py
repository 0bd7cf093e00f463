"""Long benchmark scripts (``bench_*.py``) and the harness they share (``benchmarks.harness``).

A regular package so that ``import benchmarks.harness`` finds this folder first wherever the
scripts run (tests, the lent GPU machines), not a same-named package elsewhere on ``sys.path``."""
