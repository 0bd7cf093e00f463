#!/usr/bin/env bash
# The LLMRec Beauty LLM pass, resumable across machines that lose their disk (README, Benchmarks, step 1-2).
# Unpacks the committed parts into ../runs/lrb (answers already paid for are not asked again), runs the pass,
# and every PACK_EVERY seconds (default 1800) adds a part with what is new to
# benchmarks/results/llmrec_beauty_llm_pass/; with COMMIT=1 it also commits that folder alone (other staged
# changes stay staged). Ends with a last part when the pass ends. THREADS (default 2) sets the LLM threads,
# 1 while other jobs run; SLOTS (default 16) the server's slots and the requests in flight, the fastest on this
# 2-core machine for the profiles, whose long answers slots batch (benchmarks/results/llm_slots.md).
#   COMMIT=1 nohup bash benchmarks/llmrec_beauty_pass.sh > ../runs/logs/lrb.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PARTS=benchmarks/results/llmrec_beauty_llm_pass
WORK=../runs/lrb
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-16}
ARCHIVE_ARGS=(--dataset beauty --augment_path "$WORK/data" --cache_dir "$WORK/cache" --archive "$PARTS")

pack() {
  local out
  out=$("$PY" benchmarks/llm_pass_archive.py pack "${ARCHIVE_ARGS[@]}" --outputs lrcand lredge itemattr userprof 2>&1)
  echo "$(date +%T) $out"
  case "$out" in *"nothing new"*|*error*|*Traceback*) return;; esac
  if [ "${COMMIT:-0}" = 1 ]; then
    for try in 1 2 3 4 5; do
      git add "$PARTS" && git commit -q -m "LLMRec Beauty LLM pass: a part of its archive" -- "$PARTS" && break
      sleep 20
    done
  fi
}

if [ ! -f "$WORK/cache/chat.sqlite" ] && [ -d "$PARTS" ]; then
  "$PY" benchmarks/llm_pass_archive.py unpack "${ARCHIVE_ARGS[@]}" || exit 1
fi
"$PY" run_recbole_llmaug.py --augment=llmrec --dataset=beauty --data_path=../shared/data --split_seed=2020 \
  --augment_path="$WORK/data" --llmaug_cache_dir="$WORK/cache" --llm_threads="$THREADS" \
  --llm_parallel="$SLOTS" --llm_concurrency="$SLOTS" &
pass=$!
trap 'kill $pass 2>/dev/null; wait $pass; pack; exit 1' INT TERM
while kill -0 "$pass" 2>/dev/null; do
  for _ in $(seq "${PACK_EVERY:-1800}"); do kill -0 "$pass" 2>/dev/null || break; sleep 1; done
  pack
done
wait "$pass"; code=$?
pack
exit "$code"
