"""The four sub-commands: a (variant, seed, protocol) matrix of child processes, ``--jobs`` at a time,
with the reports rewritten after every finished run (a long matrix shows its numbers as they come)."""

import concurrent.futures
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.harness import reports, reuse
from benchmarks.harness.logs import log_name, records_from_logs
from benchmarks.harness.spec import user_error

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "child.py"


def prepare_work_dir(spec, args):
    """``<work_dir>/<dataset>/`` with links to the dataset's files (the augmentor writes next to them,
    so the shared data folder is never written to nor copied)."""
    source = Path(args.data_path).expanduser().resolve() / args.dataset
    if not source.is_dir():
        raise user_error(f"No dataset folder {source}. Pass --data_path (the folder that holds '{args.dataset}/') "
                          f"and --dataset.")
    target = Path(args.work_dir) / args.dataset
    target.mkdir(parents=True, exist_ok=True)
    prefix, kinds = f"{args.dataset}.", spec.linked_kinds
    for path in source.iterdir():
        kind = path.name[len(prefix):].removesuffix(".manifest.json") if path.name.startswith(prefix) else None
        if kind in kinds:  # e.g. 'inter', 'pseudo.llm-ids', 'llmrec_train.inter', and their manifests
            link = target / path.name
            if not link.exists():
                link.symlink_to(path)


def read_settings(path):
    """The settings mapping of a yaml file (``--settings``); a ``UserError`` naming the file otherwise."""
    import yaml

    try:
        settings = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise user_error(f"Cannot read --settings {path}: {error}. Pass a yaml file of RecBole settings "
                         f"(e.g. the best_config.yaml of a Ray Tune search).") from None
    if not isinstance(settings, dict):
        raise user_error(f"--settings {path} holds no 'key: value' settings. Pass a yaml file of RecBole settings "
                         f"(e.g. the best_config.yaml of a Ray Tune search).")
    return settings


def run_config(spec, args, seed, protocol):
    """Config dict of one run before the variant's overrides: the spec's settings under what the
    command line sets (budget, batch sizes, device, where files go), ``eval_args`` with ``mode``.
    ``--settings FILE`` (e.g. a Ray Tune search's ``best_config.yaml``) goes over the spec's settings."""
    settings = copy.deepcopy(spec.settings)
    if args.settings:
        settings.update(read_settings(args.settings))
    config = settings | {
        "data_path": str(args.work_dir),
        "seed": seed,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "eval_args": dict(settings.get("eval_args", {}), mode=protocol),
        "show_progress": False,
        "use_gpu": args.device == "gpu",
        "extra_test_modes": list(getattr(args, "also_test", [])),
        "checkpoint_dir": str(Path(args.work_dir) / "saved"),
        "results_dir": str(Path(args.work_dir) / "records"),
    }
    if args.llm_cache_dir:
        config["llmaug_cache_dir"] = args.llm_cache_dir
    return config


def spawn(job, work_dir, threads, log_file):
    """Run ``job`` in a child process (``child.py``), its output to ``<work_dir>/logs/<log_file>``;
    returns the child's result, or ``None`` when it failed."""
    handle, out = tempfile.mkstemp(prefix=f"bench_{job['kind']}_", suffix=".json")
    os.close(handle)
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", PYTHONPATH=python_path)
    log = Path(work_dir) / "logs" / log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "w") as stream:
            code = subprocess.call([sys.executable, str(CHILD), json.dumps(dict(job, out=out))],
                                   stdout=stream, stderr=subprocess.STDOUT, env=env)
        if code != 0:
            print(f"  FAILED ({code}); see {log}", flush=True)
            return None
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def _pool(jobs, function, items):
    """``function(*item)`` for every item, ``jobs`` at a time (each starts and waits for one child)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(function, *item) for item in items]:
            future.result()


def _queue(spec, names, seeds, protocols=(None,)):
    """Main comparison first, the rest after; seed-major within each, so that every variant has a
    first number early."""
    main = [name for name in names if name in spec.main_variants]
    rest = [name for name in names if name not in spec.main_variants]
    return [(name, seed, protocol) for group in (main, rest) for seed in seeds for name in group
            for protocol in protocols]


def _where(args):
    return "GPU (CUDA)" if args.device == "gpu" else "CPU"


def _metric_labels(spec):
    """``H@10 / N@10`` for ``hit@10``, ``ndcg@10``: how reports name the metrics."""
    short = {"hit": "H", "ndcg": "N"}
    labels = []
    for metric in spec.metrics:
        name, at, cutoff = metric.partition("@")
        labels.append(short.get(name, name) + at + cutoff)
    return " / ".join(labels)


# ------------------------------------------------------------------------------------------ run
def run(spec, args, command):
    """Train and test every (variant, seed, protocol) in its own process; one report per protocol
    (``<results>.md`` for full ranking, ``<results>_<protocol>.md`` otherwise)."""
    names = spec.resolve(args.models or spec.default_variants)
    prepare_work_dir(spec, args)
    started, lock, records = time.time(), threading.Lock(), []
    inputs = reuse.input_hashes(Path(args.work_dir) / args.dataset)
    version = reuse.code_version()
    recorded = reuse.recorded_runs(Path(args.results).parent)

    def one(name, seed, protocol):
        t0, variant = time.time(), spec.variant(name)
        job = {"kind": "run", "name": name, "seed": seed, "model": variant.model, "dataset": args.dataset,
               "threads": args.threads, "no_augment": args.no_augment,
               "source": str(Path(args.data_path).expanduser().resolve() / args.dataset),
               "config": run_config(spec, args, seed, protocol) | variant.overrides}
        key = reuse.run_key(variant.model, args.dataset, job["config"], inputs)
        found = reuse.find(recorded, key, version, args.reuse)
        if found is not None:
            print(f"run {name} seed={seed} protocol={protocol}: recorded (run key {key}, code "
                  f"{found.get('code_version')}), not trained again", flush=True)
            record = dict(found, name=name, seed=seed, protocol=protocol, reused=True)
        elif args.recorded_only:
            print(f"run {name} seed={seed} protocol={protocol}: not recorded, left pending (--recorded_only)",
                  flush=True)
            return
        else:
            print(f"run {name} seed={seed} protocol={protocol} ...", flush=True)
            log = log_name("run", name, seed, protocol)
            out = spawn(job, args.work_dir, args.threads, log)
            print(f"  {name} seed={seed} done in {time.time() - t0:.0f}s: "
                  f"{json.dumps(out)[:300] if out else 'failed'}", flush=True)
            failed = {"failed": True, "log": str(Path(args.work_dir) / "logs" / log)}
            record = {"name": name, "seed": seed, "protocol": protocol} | (out or failed)
            if out:
                record |= {"run_key": key, "code_version": version}
        with lock:
            records.append(record)
            write_run_report(spec, args, command, [r for r in records if r["protocol"] == protocol], names,
                             protocol, time.time() - started)

    _pool(args.jobs, one, _queue(spec, names, args.seeds, args.protocol))
    if args.recorded_only:  # a report even where nothing was recorded (every variant pending)
        for protocol in args.protocol:
            write_run_report(spec, args, command, [r for r in records if r["protocol"] == protocol], names,
                             protocol, time.time() - started)


def write_run_report(spec, args, command, records, names, protocol, elapsed):
    """``<results>[_<protocol>].md`` and ``.json`` of the ``run`` records of one protocol."""
    markdown = run_markdown(spec, args, command, records, names, protocol, elapsed)
    stem = args.results + ("" if protocol == "full" else f"_{protocol}")
    reports.write_report(stem, markdown, {"command": command, "results": reports.by_name(records, names)})


def run_markdown(spec, args, command, records, names, protocol, elapsed):
    """The ``run`` report page: what was run (from the command line's ``args``), then the tables."""
    description = (
        f"{args.dataset}, {spec.split}, protocol `{protocol}`, {_metric_labels(spec)} on the test set (best "
        f"validation epoch), mean ± std over seeds {args.seeds}; budget {args.epochs} epochs, early stop after "
        f"{args.stopping_step} epochs without validation gain; train_batch_size {args.batch_size}; {_where(args)}, "
        f"{args.threads} CPU thread(s) per run, {args.jobs} run(s) at a time.")
    reused = [record for record in records if record.get("reused")]
    if getattr(args, "recorded_only", False):
        description += (f" Collected from recorded runs (`--recorded_only`, `--reuse {args.reuse}`): "
                        f"{len(records)} recorded; a run not recorded yet is missing from its row's mean.")
    elif reused:
        description += (f" {len(reused)} of the {len(records)} runs were recorded before with the same run key "
                        f"(model, inputs, settings, seed; `--reuse {args.reuse}`) and not trained again.")
    return reports.run_report(records, title=spec.title, command=command, description=description,
                              protocol=protocol, names=names, also_test=args.also_test, gpu=args.device == "gpu",
                              groups=spec.groups, metrics=spec.metrics, extra_tables=spec.extra_tables,
                              elapsed=elapsed)


# ------------------------------------------------------------------------------------------ timing
def timing(spec, args, command):
    """Seconds per bare training epoch and peak memory of each variant, one seed, one process each."""
    names = spec.resolve(args.models or spec.timing_variants or spec.default_variants)
    prepare_work_dir(spec, args)
    started, lock, records = time.time(), threading.Lock(), []
    seed = args.seeds[0]

    def one(name, seed, _):
        print(f"timing {name} seed={seed} ...", flush=True)
        t0, variant = time.time(), spec.variant(name)
        job = {"kind": "timing", "name": name, "seed": seed, "model": variant.model, "dataset": args.dataset,
               "threads": args.threads, "no_augment": args.no_augment, "epochs": args.epochs,
               "config": run_config(spec, args, seed, args.protocol) | variant.overrides}
        out = spawn(job, args.work_dir, args.threads, log_name("timing", name, seed, args.protocol))
        print(f"  {name} seed={seed} done in {time.time() - t0:.0f}s: {json.dumps(out)[:300] if out else 'failed'}",
              flush=True)
        with lock:
            records.append({"name": name, "seed": seed} | (out or {"failed": True}))
            description = (f"Seconds per training epoch (RecBole `Trainer._train_epoch`, no evaluation), "
                           f"{args.dataset}, train_batch_size {args.batch_size}, {args.threads} thread(s), "
                           f"{_where(args)}, seed {seed}.")
            markdown = reports.timing_report(records, title=spec.title, command=command, description=description,
                                             reference=spec.timing_reference, elapsed=time.time() - started)
            payload = {"command": command,
                       "results": {r["name"]: (None if r.get("failed") else r) for r in records}}
            reports.write_report(args.results + "_timing", markdown, payload)

    _pool(args.jobs, one, _queue(spec, names, [seed]))


# ------------------------------------------------------------------------------------------ retest
def retest(spec, args, command):
    """Each record's checkpoint tested again under ``--modes``, one process per run, no training."""
    saved = {}
    for path in args.records:
        try:
            saved[path] = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise user_error(f"Cannot read the run record {path} ({error}). Pass the JSON records that runs "
                              f"write to their results_dir (<work_dir>/records/*.json).") from None
    missing = [path for path, record in saved.items() if not record.get("checkpoint")]
    if missing:
        raise user_error(f"No checkpoint in {', '.join(missing)}: these runs were not saved. Retest only runs "
                          f"trained with saved=True (every bench run is).")
    retested = {(spec.name_of_record(record), record["config"]["seed"]) for record in saved.values()}
    records, kept_commands = earlier_retests(args.results + "_retest.json", args.modes, retested)
    names = spec.report_order({name for name, _ in retested} | {record["name"] for record in records})
    started, lock = time.time(), threading.Lock()

    def one(path):
        name, seed = spec.name_of_record(saved[path]), saved[path]["config"]["seed"]
        print(f"retest {name} seed={seed} ...", flush=True)
        job = {"kind": "retest", "name": name, "seed": seed, "threads": args.threads, "record": path,
               "modes": args.modes}
        out = spawn(job, args.work_dir, args.threads, log_name("retest", name, seed, Path(path).stem))
        with lock:
            records.append({"name": name, "seed": seed, "record": path} | (out or {"failed": True}))
            records.sort(key=lambda r: (names.index(r["name"]), r["seed"]))
            markdown = reports.retest_report(records, title=spec.title, command=command, modes=args.modes,
                                             names=names, groups=spec.groups, metrics=spec.metrics,
                                             elapsed=time.time() - started, kept_commands=kept_commands)
            payload = {"command": command, "results": reports.by_name(records, names)}
            reports.write_report(args.results + "_retest", markdown,
                                 payload | ({"kept_commands": kept_commands} if kept_commands else {}))

    _pool(args.jobs, one, [(path,) for path in saved])


def earlier_retests(path, modes, retested):
    """The runs of an earlier retest report at ``path`` to keep in the new one, and the commands that tested
    them: every run tested under all of ``modes`` whose (variant, seed) is not in ``retested`` (a run retested
    now replaces its earlier test). So a report's runs can be retested in parts, e.g. the runs trained later
    in another session, when the earlier runs' checkpoints are gone. ``([], [])`` without such a file."""
    if not Path(path).is_file():
        return [], []
    try:
        data = json.loads(Path(path).read_text())
        earlier = reports.records_from_results(data["results"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise user_error(f"Cannot read the earlier retest report {path} ({error}). Move it away (or pass another "
                         f"--results) to start a new one.") from None
    kept = [run for run in earlier if not run.get("failed") and (run["name"], run["seed"]) not in retested
            and set(modes) <= set(run.get("tests", {}))]
    if not kept:
        return [], []
    print(f"keeping {len(kept)} run(s) of {path} tested under {', '.join(modes)} (not retested now)", flush=True)
    return kept, data.get("kept_commands", []) + [data["command"]]


# ------------------------------------------------------------------------------------------ logs
def logs(spec, args, command):
    """Grouped validation table over seeds rebuilt from ``<work_dir>/logs`` (no process started)."""
    records = records_from_logs(Path(args.work_dir) / "logs", args.protocol)
    names = spec.report_order({record["name"] for record in records})
    markdown = reports.logs_report(records, protocol=args.protocol, source=f"{args.work_dir}/logs", names=names,
                                   groups=spec.groups, metrics=spec.metrics)
    path = reports.write_report(args.results + "_valid_from_logs", markdown, reports.by_name(records, names))
    print(path.read_text())
