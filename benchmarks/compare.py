"""One comparison of every system against its backbone, built from the benchmarks' records.

Each benchmark (``bench_llmesr.py``, ``bench_llmser.py``, ``bench_llmrec.py``) writes a harness report whose
JSON holds every run's record (seed, test result with the long-tail groups, cost fields). This script
reads those reports, so nothing recorded is trained again, and for every declared *pair* (a system's
variant against its backbone, on one dataset) writes:

* a table per group set: backbone and system as mean ± std over seeds, the gain, and a paired t-test over
  the seeds both have (``*`` p < 0.05, ``**`` p < 0.01; no mark: not significant or fewer than 2 pairs);
* ``<out>_groups.png``: N@10 of backbone and system per long-tail group, one panel per pair;
* ``<out>_headline.png``: the relative gain of every pair in every group, one grid (the README's figure);
* ``<out>_cost.png``: gain in N@10 against the cost of the augmentation, one panel per measure of it (USD at
  the cost table's stated price, LLM calls, tokens, wall time of the pass), one point per seed and the mean,
  for the pairs whose cost table is recorded.

After the main matrix, each of ``GPU_SECTIONS`` (the same pairs at a longer budget, run on a lent GPU machine
through ``benchmarks/device/``) gets its own tables, composition table and ``<out>_<suffix>_groups.png``; a missing
section report reads pending and changes nothing else.

A pair whose report is missing is listed as pending, with the command that makes it in its row. With ``--run``
those commands run first, each writing the pair's report; the harness does not train again a run recorded
with the same run key and code version (``benchmarks/harness/reuse.py``), and a cost table that a pair
declares a ``cost.py`` command for is written after its runs, so the one command below fills the missing
cells of the matrix and collects the rest:

    python benchmarks/compare.py --dataset all --run --out benchmarks/results/compare_all
    python benchmarks/compare.py --dataset ml-100k --out benchmarks/results/compare_ml-100k   # collect only
"""

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness.reports import mean_std, pair_by_seed, read_records, result_key  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
GROUP_SETS = {
    "Overall and long-tail users": ("all", "tail_user", "head_user"),
    "Long-tail items": ("tail_item", "head_item"),
    "Short / medium / long users (LLMSeR's groups)": ("short_user", "medium_user", "long_user"),
}
GROUPS = tuple(group for groups in GROUP_SETS.values() for group in groups)  # every group, in table order
FIGURE_GROUPS = ("all", "tail_user", "head_user", "tail_item", "head_item")


@dataclass(frozen=True)
class Pair:
    """A system's variant against its backbone: where their runs are recorded and, optionally, the cost
    table (``cost.py``'s JSON stem) and its variant name that price the system's augmentation, and the
    ``cost.py`` command that writes that table (without ``--results``/``--out``, which ``--run`` adds: the
    pair's report and the table's stem), for the tables ``--run`` makes after their runs."""

    dataset: str
    system: str
    variant: str
    backbone: str
    report: str
    command: str
    cost: Optional[str] = None
    cost_variant: Optional[str] = None
    cost_command: Optional[str] = None


SEEDS = "--seeds 2020 2021 2022"


def llmesr(backbone: str, epochs: int) -> str:
    return (f"python benchmarks/bench_llmesr.py run --models {backbone} LLMESR-{backbone} {SEEDS} --epochs {epochs} "
            f"--stopping_step {epochs} --also_test uni100")


LLMSER = (f"python benchmarks/bench_llmser.py run --models SASRec LLMSeR-SASRec GRU4Rec LLMSeR-GRU4Rec BERT4Rec "
          f"LLMSeR-BERT4Rec {SEEDS} --epochs 5 --stopping_step 5 --also_test uni100")
LLMREC = (f"python benchmarks/bench_llmrec.py run --data_path ../runs/lr100k/data --llm_cache_dir ../runs/lr100k/cache "
          f"--epochs 60 {SEEDS} --jobs 2 --also_test uni100")
ML100K_SEQ = "--dataset ml-100k --data_path dataset_atomic"  # written by any run on the embedded ml-100k
LLMSER_ML100K = (f"python benchmarks/bench_llmser.py run --models SASRec LLMSeR-SASRec GRU4Rec LLMSeR-GRU4Rec BERT4Rec "
                 f"LLMSeR-BERT4Rec {ML100K_SEQ} --settings benchmarks/llmser_all_users.yaml {SEEDS} --epochs 5 "
                 f"--stopping_step 5 --also_test uni100")
# ml-100k's sequences are long (106 items on average): LLM-ESR's default `train_mode: whole` takes one step per
# 256 users (about 20 in 5 epochs) where the backbone takes one per 256 prefixes (about 1,900), so the SASRec
# pair also trains LLM-ESR on the backbone's rows (`-prefix`: the same steps per epoch).
LLMESR_ML100K_SASREC = (f"python benchmarks/bench_llmesr.py run --models SASRec LLMESR-SASRec LLMESR-SASRec-prefix "
                        f"{SEEDS} --epochs 5 --stopping_step 5 --also_test uni100 {ML100K_SEQ}")
# after the LLM pass into ../runs/lrb/data (README: Benchmarks), which links Beauty's atomic files beside its outputs
LLMREC_BEAUTY = (f"python benchmarks/bench_llmrec.py run --models LightGCN LLMRec BPR BPR-aug LightGCN-aug --dataset beauty "
                 f"--data_path ../runs/lrb/data --llm_cache_dir ../runs/lrb/cache --epochs 60 --stopping_step 2 "
                 f"--settings benchmarks/llmrec_beauty.yaml {SEEDS} --jobs 2")
LLMREC_BEAUTY_COST = ("python benchmarks/cost.py --data_dir ../runs/lrb/data --dataset beauty --baseline LightGCN "
                      "--metrics ndcg@10 ndcg@20 --uses LightGCN-aug=lrcand,lredge BPR-aug:BPR=lrcand,lredge "
                      "LLMRec=lrcand,lredge,itemattr,userprof,itememb,useremb")
PAIRS = [
    Pair("beauty", "LLM-ESR", "LLMESR-SASRec", "SASRec", "llmesr_cpu_sasrec_5ep",
         llmesr("SASRec", 5), "llmesr_cost", "LLMESR-SASRec"),
    Pair("beauty", "LLM-ESR", "LLMESR-GRU4Rec", "GRU4Rec", "llmesr_cpu_gru4rec_5ep",
         llmesr("GRU4Rec", 5), "llmesr_cost", "LLMESR-GRU4Rec"),
    Pair("beauty", "LLM-ESR", "LLMESR-BERT4Rec", "BERT4Rec", "llmesr_cpu_bert4rec_3ep",
         llmesr("BERT4Rec", 3),
         "llmesr_cost", "LLMESR-BERT4Rec"),
    Pair("beauty", "LLMSeR", "LLMSeR-SASRec", "SASRec", "llmser", LLMSER, "llmser_cost", "LLMSeR-SASRec"),
    Pair("beauty", "LLMSeR", "LLMSeR-GRU4Rec", "GRU4Rec", "llmser", LLMSER, "llmser_cost", "LLMSeR-GRU4Rec"),
    Pair("beauty", "LLMSeR", "LLMSeR-BERT4Rec", "BERT4Rec", "llmser", LLMSER, "llmser_cost", "LLMSeR-BERT4Rec"),
    Pair("ml-100k", "LLM-ESR", "LLMESR-SASRec", "SASRec", "llmesr_ml-100k_sasrec", LLMESR_ML100K_SASREC),
    Pair("ml-100k", "LLM-ESR, prefix training", "LLMESR-SASRec-prefix", "SASRec", "llmesr_ml-100k_sasrec",
         LLMESR_ML100K_SASREC),
    Pair("ml-100k", "LLM-ESR", "LLMESR-GRU4Rec", "GRU4Rec", "llmesr_ml-100k_gru4rec", f"{llmesr('GRU4Rec', 5)} {ML100K_SEQ}"),
    Pair("ml-100k", "LLM-ESR", "LLMESR-BERT4Rec", "BERT4Rec", "llmesr_ml-100k_bert4rec",
         f"{llmesr('BERT4Rec', 5)} {ML100K_SEQ}"),
    Pair("ml-100k", "LLMSeR", "LLMSeR-SASRec", "SASRec", "llmser_ml-100k", LLMSER_ML100K, "llmser_ml-100k_cost",
         "LLMSeR-SASRec"),
    Pair("ml-100k", "LLMSeR", "LLMSeR-GRU4Rec", "GRU4Rec", "llmser_ml-100k", LLMSER_ML100K, "llmser_ml-100k_cost",
         "LLMSeR-GRU4Rec"),
    Pair("ml-100k", "LLMSeR", "LLMSeR-BERT4Rec", "BERT4Rec", "llmser_ml-100k", LLMSER_ML100K, "llmser_ml-100k_cost",
         "LLMSeR-BERT4Rec"),
    Pair("beauty", "LLMRec", "LLMRec", "LightGCN", "llmrec_beauty", LLMREC_BEAUTY, "llmrec_beauty_cost", "LLMRec",
         LLMREC_BEAUTY_COST),
    Pair("beauty", "LLMRec (augmented file)", "LightGCN-aug", "LightGCN", "llmrec_beauty", LLMREC_BEAUTY,
         "llmrec_beauty_cost", "LightGCN-aug", LLMREC_BEAUTY_COST),
    Pair("beauty", "LLMRec (augmented file)", "BPR-aug", "BPR", "llmrec_beauty", LLMREC_BEAUTY,
         "llmrec_beauty_cost", "BPR-aug", LLMREC_BEAUTY_COST),
    Pair("ml-100k", "LLMRec", "LLMRec", "LightGCN", "llmrec", LLMREC, "llmrec_cost", "LLMRec"),
    Pair("ml-100k", "LLMRec (augmented file)", "LightGCN-aug", "LightGCN", "llmrec", LLMREC,
         "llmrec_cost", "LightGCN-aug"),
    Pair("ml-100k", "LLMRec (augmented file)", "BPR-aug", "BPR", "llmrec", LLMREC, "llmrec_cost", "BPR-aug"),
    Pair("ml-100k", "LLMRec, both tuned", "LLMRec", "LightGCN", "llmrec_tuned_LLMRec+llmrec_tuned_LightGCN",
         "README: LLMRec, its benchmark (the two searches, then each best config x 3 seeds)",
         "llmrec_cost_tuned", "LLMRec"),
]


@dataclass(frozen=True)
class Composition:
    """Two systems on one backbone, alone and composed (``both``), recorded in one report."""

    dataset: str
    backbone: str
    first: str
    second: str
    both: str
    report: str
    command: str

    def pair(self, variant: str, against: Optional[str] = None) -> Pair:
        """``variant`` against ``against`` (the backbone by default), from this composition's report."""
        return Pair(self.dataset, "composition", variant, against or self.backbone, self.report, self.command)

    def pairs(self):
        """The three variants against the backbone, as pairs."""
        return [self.pair(variant) for variant in (self.first, self.second, self.both)]


COMPOSITIONS = [
    Composition("beauty", "SASRec", "LLMESR-SASRec", "LLMSeR-SASRec", "LLMESRSeR-SASRec", "llmser_composition",
                f"python benchmarks/bench_llmser.py run --models SASRec LLMESR-SASRec LLMSeR-SASRec LLMESRSeR-SASRec "
                f"{SEEDS} --epochs 5 --stopping_step 5 --also_test uni100"),
]
COMPOSITION_GROUPS = ("all", "tail_user", "head_user", "short_user", "tail_item")


@dataclass(frozen=True)
class Section:
    """A second matrix at another budget, after the main one: its own tables, composition table, group figure
    (``<out>_<suffix>_groups.png``) and sources. Its commands run on another machine (a lent GPU), so
    ``--run`` never starts them; a missing report reads pending, and nothing else in the report needs it."""

    title: str
    note: str
    suffix: str
    pairs: tuple
    compositions: tuple = ()


GPU_RUN = ("benchmarks/device/pack.sh ../runs/ls/data/beauty ../shared/data/beauty itememb simuser ccgcand arvcand "
           "pseudo.llm-ids arv.llm; on the GPU machine (carry .devcarry): BENCH=llmser bash benchmarks/device/start.sh "
           "--models {models} {seeds} --epochs 20 --stopping_step 5 --jobs {jobs} --threads 1 --eval_batch_size 4096 "
           "--also_test uni100 && bash benchmarks/device/wait.sh 470 (again until FINISHED)")
GPU_MATRIX = GPU_RUN.format(models="SASRec LLMESR-SASRec LLMSeR-SASRec GRU4Rec LLMESR-GRU4Rec LLMSeR-GRU4Rec",
                            seeds=SEEDS, jobs=18)
GPU_SECTIONS = [
    Section("Beauty on a GPU, 20 epochs", "Four times the CPU budget of the Beauty pairs above (SASRec and GRU4Rec "
            "pairs: 5 epochs there), every run on one lent H100 with early stop after 5 epochs without validation "
            "gain; same split, seeds, augmented files and protocol as the CPU pairs. BERT4Rec's pairs and LLMRec "
            "did not fit in the session's 30 minutes of GPU time.", "gpu20",
            tuple(Pair("beauty", system, f"{prefix}-{backbone}", backbone, "gpu_beauty_20ep", GPU_MATRIX,
                       f"{prefix.lower()}_cost", f"{prefix}-{backbone}")  # the same augmentation as on CPU
                  for backbone in ("SASRec", "GRU4Rec") for system, prefix in (("LLM-ESR", "LLMESR"), ("LLMSeR", "LLMSeR"))),
            (Composition("beauty", "SASRec", "LLMESR-SASRec", "LLMSeR-SASRec", "LLMESRSeR-SASRec",
                         "gpu_beauty_20ep_composition",
                         GPU_RUN.format(models="SASRec LLMESR-SASRec LLMSeR-SASRec LLMESRSeR-SASRec", seeds=SEEDS,
                                        jobs=3)),)),
]


def load_runs(report: str, results: Path, protocol: str = "full") -> Optional[list]:
    """The finished runs of ``report`` (``a+b``: several reports pooled), each with ``test_result`` under
    ``protocol``: its own test when it was trained under it, else its ``extra_test_results`` entry (a run
    without one is left out); a sampled protocol also reads ``<report>_<protocol>.json`` (runs trained
    under it) when there is one, and for a variant with no such runs, its checkpoints' tests under it in
    ``<report>_retest.json`` (``retest``). ``None`` if a report is missing."""
    runs = []
    for stem in report.split("+"):
        paths = [results / f"{stem}.json"] + ([results / f"{stem}_{protocol}.json"] if protocol != "full" else [])
        if not paths[0].is_file():
            return None
        found = []
        for path in filter(Path.is_file, paths):
            for run in read_records(path):
                result = None if run.get("failed") else test_of(run, protocol)
                if result is not None:
                    found.append(dict(run, test_result=result))
        retest = results / f"{stem}_retest.json"
        if retest.is_file():
            have = {run["name"] for run in found}
            found += [dict(run, test_result=run["tests"][protocol]["result"]) for run in read_records(retest)
                      if run["name"] not in have and protocol in (run.get("tests") or {})]
        runs += found
    return runs


def test_of(run: dict, protocol: str) -> Optional[dict]:
    """A run's test result under ``protocol`` (``full``, ``uni100``...), ``None`` when it was not tested so."""
    if run.get("protocol", "full") == protocol:
        return run["test_result"]
    return (run.get("extra_test_results") or {}).get(protocol)


def paired(base: list, system: list, key: str):
    """``(pairs of (base, system) values, p)``: paired by seed, or by position for older records without
    seeds (``reports.pair_by_seed``); ``p`` of a two-sided paired t-test, ``None`` under 2 pairs or no spread."""
    values = lambda runs: [(run.get("seed"), run["test_result"][key])  # noqa: E731
                           for run in runs if key in run["test_result"]]
    pairs = pair_by_seed(values(base), values(system))
    differences = [s - b for b, s in pairs]
    if len(pairs) < 2 or statistics.pstdev(differences) < 1e-12:  # equal gains up to rounding: no t statistic
        return pairs, None
    from scipy.stats import ttest_rel

    return pairs, float(ttest_rel([s for _, s in pairs], [b for b, _ in pairs]).pvalue)


def mark(p):
    """``**`` for p < 0.01, ``*`` for p < 0.05, else nothing."""
    return "" if p is None or math.isnan(p) else "**" if p < 0.01 else "*" if p < 0.05 else ""


def cell(values):
    """``mean ± std`` of a list of values, as the harness reports write a table cell."""
    return mean_std({"n": len(values), "mean": statistics.mean(values) if values else None,
                     "std": statistics.stdev(values) if len(values) > 1 else None})


def compare_pair(pair: Pair, results: Path, metric: str = "ndcg@10", protocol: str = "full"):
    """``None`` if its report is missing; else per group: backbone and system values, gain, p."""
    runs = load_runs(pair.report, results, protocol)
    if runs is None:
        return None
    base = [run for run in runs if run["name"] == pair.backbone]
    system = [run for run in runs if run["name"] == pair.variant]
    if not base or not system:  # not recorded (yet) under this protocol
        return None
    groups = {}
    for group in GROUPS:
        key = result_key(group, metric)
        pairs, p = paired(base, system, key)
        if not pairs:
            continue
        groups[group] = {"backbone": [b for b, _ in pairs], "system": [s for _, s in pairs],
                         "gain": statistics.mean(s - b for b, s in pairs), "p": p}
    return {"pair": pair, "groups": groups, "seeds": sorted({run.get("seed") for run in system}, key=str)}


def pair_cost(pair: Pair, results: Path) -> Optional[dict]:
    """The cost row of the pair's system in its cost table (``cost.py``'s JSON), with the stated price."""
    if not pair.cost:
        return None
    path = results / f"{pair.cost}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    row = next((row for row in data["variants"] if row["variant"] == pair.cost_variant), None)
    return row and dict(row, price=data["price_per_million"])


def tables(compared, metric):
    """One markdown table per group set, a row per pair: backbone, system, gain and its significance."""
    out = []
    for caption, groups in GROUP_SETS.items():
        header = ["dataset", "system", "backbone"] + [f"{group} {part}" for group in groups
                                                      for part in ("backbone", "system", "gain")]
        lines = [f"### {caption} ({metric})\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for pair, result in compared:
            cells = [pair.dataset, f"{pair.system}: {pair.variant}", pair.backbone]
            if result is None:
                cells += ["pending"] * (3 * len(groups))
            else:
                for group in groups:
                    entry = result["groups"].get(group)
                    cells += (["n/a"] * 3 if entry is None else
                              [cell(entry["backbone"]), cell(entry["system"]), f"{entry['gain']:+.4f}{mark(entry['p'])}"])
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_figure(compared, path, metric):
    """Grouped bars: ``metric`` of the backbone and the system per long-tail group, a panel per pair."""
    plt = _pyplot()
    done = [(pair, result) for pair, result in compared if result]
    if not done:
        return None
    columns = min(3, len(done))
    rows = math.ceil(len(done) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, (pair, result) in zip(axes.flat, done):
        groups = [group for group in FIGURE_GROUPS if group in result["groups"]]
        x = range(len(groups))
        for offset, (role, label) in zip((-0.2, 0.2), (("backbone", pair.backbone), ("system", pair.variant))):
            means = [statistics.mean(result["groups"][g][role]) for g in groups]
            axis.bar([i + offset for i in x], means, width=0.4, label=label)
        top = max(statistics.mean(result["groups"][g][role]) for g in groups for role in ("backbone", "system"))
        axis.set_ylim(0, top * 1.15 or 1)  # room for the significance marks
        for i, group in enumerate(groups):
            axis.annotate(mark(result["groups"][group]["p"]), (i + 0.2, statistics.mean(result["groups"][group]["system"])),
                          ha="center", va="bottom")
        axis.set_xticks(list(x), [g.replace("_", " ") for g in groups], fontsize=8)
        axis.set_title(f"{pair.dataset}: {pair.system}", fontsize=9)
        axis.set_ylabel(metric)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(done):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def headline_figure(compared, path, metric):
    """One grid for the README: a row per pair, a column per group, the relative gain of the system over
    its backbone (mean of the seed pairs' gains over the backbone's mean) as colour and number, with the
    significance marks; red where the system loses."""
    plt = _pyplot()
    done = [(pair, result) for pair, result in compared if result]
    groups = [group for group in GROUPS
              if any(group in result["groups"] and statistics.mean(result["groups"][group]["backbone"]) > 0
                     for _, result in done)]
    if not done or not groups:
        return None
    grid, labels = [], []
    for pair, result in done:
        row, text = [], []
        for group in groups:
            entry = result["groups"].get(group)
            base = statistics.mean(entry["backbone"]) if entry else 0
            if not entry or base <= 0:
                row.append(math.nan)
                text.append("n/a")
                continue
            relative = 100 * entry["gain"] / base
            row.append(relative)
            text.append(f"{relative:+.0f}%{mark(entry['p'])}")
        grid.append(row)
        labels.append(text)
    figure, axis = plt.subplots(figsize=(1.05 * len(groups) + 3.6, 0.42 * len(done) + 1.3))
    # colours saturate at 100%: a tail-item gain on a base near zero would wash out every other cell
    bound = min(100.0, max(abs(value) for row in grid for value in row if not math.isnan(value)) or 1)
    image = axis.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for i, text in enumerate(labels):
        for j, value in enumerate(text):
            dark = not math.isnan(grid[i][j]) and abs(grid[i][j]) > 0.6 * bound
            axis.text(j, i, value, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axis.set_xticks(range(len(groups)), [group.replace("_", " ") for group in groups], fontsize=8)
    axis.set_yticks(range(len(done)), [f"{pair.dataset}, {pair.system}: {pair.variant} vs {pair.backbone}"
                                           for pair, _ in done],
                    fontsize=8)
    axis.set_title(f"relative gain in {metric} over the backbone (mean over seeds; * p < 0.05, ** p < 0.01)",
                   fontsize=9)
    figure.colorbar(image, ax=axis, label="%", shrink=0.8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _tokens(cost):
    """Millions of tokens of the augmentation: prompt, answer and embedding (``None`` if the table lacks them)."""
    parts = [cost.get(key) for key in ("pass_prompt_tokens", "pass_completion_tokens", "embedding_tokens")]
    return None if any(part is None for part in parts) else sum(parts) / 1e6


def _hours(cost):
    """Wall time of the augmentation pass in hours (``None`` if the table lacks it)."""
    return None if cost.get("pass_wall_time_s") is None else cost["pass_wall_time_s"] / 3600


COST_AXES = (  # (axis label, value of a cost row; None: not recorded, the point is left out of that panel)
    ("USD at the stated price", lambda cost: cost.get("usd")),
    ("LLM calls (embedding requests not counted)", lambda cost: cost.get("pass_calls")),
    ("tokens, millions (prompt + answer + embedding)", _tokens),
    ("wall time of the pass, hours (this 2-core machine)", _hours),
)


def cost_figure(compared, costs, path, metric):
    """Gain in ``metric`` (overall) against the cost of the augmentation, one panel per measure of it (USD
    at the cost table's stated price, LLM calls, tokens, wall time): a point per seed and the mean per pair,
    a colour per pair and a marker per dataset, log-scaled cost axes (zero calls sit on the linear part)."""
    plt = _pyplot()
    points = [(pair, result, costs[pair]) for pair, result in compared
              if result and costs.get(pair) and "all" in result["groups"]]
    if not points:
        return None
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey=True)
    colours = plt.get_cmap("tab20").colors
    markers = {dataset: marker for dataset, marker in zip(dict.fromkeys(pair.dataset for pair, _, _ in points), "Ds^v")}
    for axis, (label, value_of) in zip(axes.flat, COST_AXES):
        values = [0.0]
        for index, (pair, result, cost) in enumerate(points):
            value = value_of(cost)
            if value is None:
                continue
            values.append(value)
            entry = result["groups"]["all"]
            gains = [s - b for b, s in zip(entry["backbone"], entry["system"])]
            colour = colours[(2 * index) % 20 if index < 10 else (2 * index + 1) % 20]
            axis.scatter([value] * len(gains), gains, alpha=0.35, s=16, color=colour)
            axis.scatter([value], [statistics.mean(gains)], marker=markers[pair.dataset], s=55, color=colour,
                         edgecolors="black", linewidths=0.5, clip_on=False,  # zero calls: on the axis
                         label=f"{pair.dataset}, {pair.system}: {pair.variant} vs {pair.backbone}")
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xscale("symlog", linthresh=1 if "calls" in label else 0.01)
        axis.set_xlim(0, 2 * max(values) or 1)  # costs are never negative; room for the largest
        axis.set_xlabel(label, fontsize=8)
        axis.set_ylabel(f"gain in {metric}")
    price = points[0][2].get("price") or {}
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    figure.suptitle(f"gain in {metric} over the backbone against the augmentation's cost (diamond/square: mean of "
                    f"a pair, dots: seeds); price: ${price.get('input')} / ${price.get('output')} per M input / "
                    f"output tokens, ${price.get('embedding')} per M embedding tokens", fontsize=8)
    figure.tight_layout(rect=(0, 0.04 + 0.022 * math.ceil(len(labels) / 3), 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def composition_table(compositions, results: Path, metric: str, protocol: str) -> str:
    """Whether the gains add up: per composition and group, each system's gain over the backbone, their
    sum, the composed model's gain and its margin over the better system alone, each with its paired
    test over the seeds (the margin's test pairs the composed runs with the better system's)."""
    header = ["dataset", "backbone", "group", "first", "gain", "second", "gain", "sum of gains", "composed",
              "gain", "composed - better alone"]
    lines = [f"### Do the gains add up? ({metric})\n",
             "Each system alone and the two composed, against the same backbone runs (same report, seeds, "
             "budget); the last column is the composed model against the better of the two alone, paired by "
             "seed and marked as the gains are.\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for composition in compositions:
        first, second, both = (compare_pair(pair, results, metric, protocol) for pair in composition.pairs())
        # the composed model against each system alone (the better one is chosen per group below)
        versus = {name: compare_pair(composition.pair(composition.both, name), results, metric, protocol)
                  for name in (composition.first, composition.second)}
        for group in COMPOSITION_GROUPS:
            entries = [result and result["groups"].get(group) for result in (first, second, both)]
            names = [composition.first, composition.second, composition.both]
            gains = [f"{entry['gain']:+.4f}{mark(entry['p'])}" if entry else "pending" for entry in entries]
            if all(entries):
                total = f"{entries[0]['gain'] + entries[1]['gain']:+.4f}"
                better = versus[names[0] if entries[0]["gain"] >= entries[1]["gain"] else names[1]]
                entry = better and better["groups"].get(group)
                margin = f"{entry['gain']:+.4f}{mark(entry['p'])}" if entry else "pending"
            else:
                total = margin = "pending"
            lines.append(f"| {composition.dataset} | {composition.backbone} | {group} | {names[0]} | {gains[0]} | "
                         f"{names[1]} | {gains[1]} | {total} | {names[2]} | {gains[2]} | {margin} |")
    return "\n".join(lines)


def runnable(pair: Pair) -> bool:
    """A pair whose runs one benchmark command writes into one report (its command runs a script here)."""
    return pair.command.startswith("python benchmarks/") and "+" not in pair.report


def command_seeds(command: str) -> list:
    """The seeds a benchmark command names after ``--seeds`` (``[]``: none named, its default)."""
    words = shlex.split(command)
    if "--seeds" not in words:
        return []
    seeds = []
    for word in words[words.index("--seeds") + 1:]:
        if word.startswith("--"):
            break
        seeds.append(int(word))
    return seeds


def complete(pair: Pair, results: Path, protocol: str = "full") -> bool:
    """Whether the pair's report holds a run of its backbone and of its variant for every seed its command
    names (any one run each when it names none; records older than seeds in records count as one seed
    each). A report that an interrupted benchmark left behind, a record written after each run, is not
    complete: ``--run`` runs its command again, which trains only the runs still missing."""
    runs = load_runs(pair.report, results, protocol)
    if runs is None:
        return False
    seeds = set(command_seeds(pair.command)) if runnable(pair) else set()
    for name in (pair.backbone, pair.variant):
        recorded = [run.get("seed") for run in runs if run["name"] == name]
        if not recorded or len(seeds - set(recorded)) > recorded.count(None):
            return False
    return True


def run_missing(pairs, results: Path, protocol: str = "full", extra_args=(), call=subprocess.call,
                dry_run: bool = False) -> list:
    """Run the benchmark command of every pair not yet recorded under ``protocol`` for each of its seeds
    (``complete``; each command once),
    writing into the pair's report in ``results``; the harness reuses every run already recorded with the
    same run key and code version (``benchmarks/harness/reuse.py``), so only missing cells train.
    Then each missing cost table that a pair declares a ``cost_command`` for is written from the pair's
    report (``cost.py`` reads the augmentation's manifests and calls no model; delete a table to write it
    again, e.g. after more seeds).
    Returns the commands run (as argument lists); a pending pair that no command makes is printed."""
    done = []

    def start(argv):
        if argv in done:
            return
        print("would run:" if dry_run else "running:", " ".join(argv[1:]), flush=True)
        code = 0 if dry_run else call(argv, cwd=str(REPO_ROOT))
        if code != 0:
            raise SystemExit(f"error: {' '.join(argv[1:])} exited with {code}; its log names the cause. Fix it "
                             f"and run this command again: recorded runs are not trained again.")
        done.append(argv)

    for pair in pairs:
        if complete(pair, results, protocol):
            continue
        if not runnable(pair):
            print(f"pending, run by hand: {pair.system}: {pair.variant} vs {pair.backbone}: {pair.command}")
            continue
        start([sys.executable, *shlex.split(pair.command)[1:], "--results", str(results / pair.report), *extra_args])
    for pair in pairs:
        recorded = dry_run or complete(pair, results)
        if pair.cost_command and recorded and not (results / f"{pair.cost}.json").is_file():
            start([sys.executable, *shlex.split(pair.cost_command)[1:], "--results",
                   str(results / f"{pair.report}.json"), "--out", str(results / pair.cost)])
    return done


def sources(compared, costs) -> str:
    """The table of where each pair comes from: report, seeds, cost table and the command that makes it."""
    lines = ["| pair | report | seeds | cost table | command |", "|---|---|---|---|---|"]
    previous = None
    for pair, result in compared:
        if result is None:
            seeds = "pending"
        elif None in result["seeds"]:  # records older than seeds in records: the report's command names them
            seeds = f"{len(result['groups'].get('all', {}).get('system', []))} runs (seeds in its command)"
        else:
            seeds = ", ".join(str(seed) for seed in result["seeds"])
        command = "(the same command)" if pair.command == previous else pair.command
        previous = pair.command
        cost = costs.get(pair)
        usd = "USD unknown" if not cost or cost["usd"] is None else f"${cost['usd']:.2f}"
        cost_text = "n/a" if not cost else f"{pair.cost} ({usd}, " + (
            f"{cost['pass_calls']} LLM calls)" if cost["pass_calls"] else f"{cost['embedding_tokens'] / 1e6:.2f}M embedding tokens)")
        lines.append(f"| {pair.system}: {pair.variant} vs {pair.backbone} | {pair.report} | {seeds} | {cost_text} "
                     f"| `{command}` |")
    return "\n".join(lines)


def section_lines(section: Section, dataset, results: Path, out: Path, metric: str, protocol: str) -> list:
    """The markdown lines of ``section`` for ``dataset`` (none when it declares no pair of it)."""
    pairs = [pair for pair in section.pairs if dataset in ("all", pair.dataset)]
    if not pairs:
        return []
    compared = [(pair, compare_pair(pair, results, metric, protocol)) for pair in pairs]
    figure = group_figure(compared, out.with_name(f"{out.name}_{section.suffix}_groups.png"), metric)
    lines = ["", f"## {section.title}\n", section.note + "\n"]
    if figure:
        lines.append(f"![{metric} per long-tail group, {section.title}]({figure.name})\n")
    lines.append(tables(compared, metric))
    compositions = [c for c in section.compositions if dataset in ("all", c.dataset)]
    if compositions:
        lines += ["", composition_table(compositions, results, metric, protocol)]
    costs = {pair: pair_cost(pair, results) for pair in pairs}
    return lines + ["", "### Where each pair of this section comes from\n", sources(compared, costs)]


def report(dataset, results: Path, out: Path, metric="ndcg@10", command="", protocol="full"):
    """Build the tables and figures of ``dataset`` (``all``: every pair) from ``results`` under the test
    ``protocol``, then each of ``GPU_SECTIONS``; returns the markdown."""
    pairs = [pair for pair in PAIRS if dataset in ("all", pair.dataset)]
    compared = [(pair, compare_pair(pair, results, metric, protocol)) for pair in pairs]
    costs = {pair: pair_cost(pair, results) for pair in pairs}
    out.parent.mkdir(parents=True, exist_ok=True)
    groups_png = group_figure(compared, out.with_name(out.name + "_groups.png"), metric)
    cost_png = cost_figure(compared, costs, out.with_name(out.name + "_cost.png"), metric)
    headline_png = headline_figure(compared, out.with_name(out.name + "_headline.png"), metric)
    lines = [f"# Every system against its backbone ({dataset}, test protocol `{protocol}`)\n",
             "Test results from each benchmark's records (nothing retrained): mean ± std over seeds, the gain "
             "(system - backbone, mean of the seed pairs) and a paired t-test over the seeds (`*` p < 0.05, "
             "`**` p < 0.01). Each pair keeps its own benchmark's split and epoch budget (its report); a pair "
             f"not tested under `{protocol}` reads pending.\n",
             f"Command: `{command}`\n"]
    if headline_png:
        lines.append(f"![relative gain per group]({headline_png.name})\n")
    if groups_png:
        lines.append(f"![{metric} per long-tail group]({groups_png.name})\n")
    if cost_png:
        lines.append(f"![gain against LLM cost]({cost_png.name})\n")
    lines.append(tables(compared, metric))
    compositions = [c for c in COMPOSITIONS if dataset in ("all", c.dataset)]
    if compositions:
        lines += ["", composition_table(compositions, results, metric, protocol)]
    lines += ["", "### Where each pair comes from\n", sources(compared, costs)]
    for section in GPU_SECTIONS:
        lines += section_lines(section, dataset, results, out, metric, protocol)
    text = "\n".join(lines) + "\n"
    out.with_name(out.name + ".md").write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="all", help="beauty, ml-100k or all")
    parser.add_argument("--results", default=str(RESULTS), help="folder of the benchmarks' reports")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--protocol", default="full", help="test protocol: full, or a sampled one such as uni100")
    parser.add_argument("--out", required=True, help="writes <out>.md, <out>_groups.png, <out>_cost.png")
    parser.add_argument("--run", action="store_true",
                        help="first run the benchmark command of every pending pair (only its missing runs train)")
    parser.add_argument("--dry_run", action="store_true", help="with --run: print the commands, run none")
    parser.add_argument("--run_args", default="", metavar="ARGS",
                        help="appended to every command --run starts, e.g. '--jobs 2' or '--device gpu --jobs 8'")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.run:
        pairs = [pair for pair in PAIRS if args.dataset in ("all", pair.dataset)]
        pairs += [pair for c in COMPOSITIONS if args.dataset in ("all", c.dataset) for pair in c.pairs()]
        run_missing(pairs, Path(args.results), args.protocol, shlex.split(args.run_args), dry_run=args.dry_run)
        if args.dry_run:
            return
    print(report(args.dataset, Path(args.results), Path(args.out), args.metric,
                 " ".join(["python benchmarks/compare.py", *argv]), args.protocol))


if __name__ == "__main__":
    main()
