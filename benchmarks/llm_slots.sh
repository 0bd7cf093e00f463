#!/usr/bin/env bash
# How the embedded llama.cpp server's slots change the LLM pass's rate on this machine: runs one stage of the
# LLMRec Beauty pass (default the profiles) on the pass's own cache for SECONDS at the pass's 2 threads and
# each number of slots in turn, and appends the calls/s over the second half of each window to the results
# file. The answers
# are the pass's (cached, never asked again), so each window measures users the earlier ones did not reach.
#   bash benchmarks/llm_slots.sh 360 2 4 8 16 32        (stop the pass first: both would share 2 cores)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}; STAGE=${STAGE:-llmrec_user_profiles}; WORK=${WORK:-../runs/lrb}
THREADS=2  # the pass's (llmrec_beauty_pass.sh)
RESULTS=benchmarks/results/llm_slots.md
usage() { echo "usage: llm_slots.sh SECONDS SLOTS... (whole numbers, SECONDS at least 60): $1" >&2; exit 2; }
[ $# -ge 2 ] || usage "give a window length and at least one number of slots"
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ ]] || usage "'$n' is not a positive whole number"; done
seconds=$1; shift
[ "$seconds" -ge 60 ] || usage "a window of $seconds s is too short to measure"
[ -f "$RESULTS" ] || printf '# LLM calls/s against the embedded server'"'"'s slots\n\n| date | stage | threads | slots | calls | seconds | calls/s |\n|---|---|---|---|---|---|---|\n' > "$RESULTS"
# "ELAPSED CALLS" of the last progress line: the bar's own clock, which moves only when the bar does
last() {
  tr '\r' '\n' < "$1" | grep 'calls=' | tail -1 | python3 -c "
import re, sys
line = sys.stdin.read()
clock = re.search(r'\[([0-9:]+)<', line); calls = re.search(r'calls=([0-9]+)', line)
if clock and calls:
    print(sum(int(x) * 60 ** i for i, x in enumerate(reversed(clock.group(1).split(':')))), calls.group(1))"
}
for slots in "$@"; do
  log=$(mktemp)
  timeout -s TERM "$seconds" "$PY" run_recbole_llmaug.py --augment="$STAGE" --model=LLMRec --dataset=beauty \
    --data_path=../shared/data --split_seed=2020 --augment_path="$WORK/data" --llmaug_cache_dir="$WORK/cache" \
    --llm_threads=$THREADS --llm_parallel="$slots" --llm_concurrency="$slots" > "$log" 2>&1 &
  sleep $((seconds / 2)); read -r ta a <<< "$(last "$log")"
  wait; read -r tb b <<< "$(last "$log")"
  if [ -z "${a:-}" ] || [ -z "${b:-}" ] || [ "$tb" -le "$ta" ]; then
    echo "$slots slots: no progress to measure (all cached, or a failure):"; tail -c 600 "$log"; rm -f "$log"; continue
  fi
  rate=$(python3 -c "print(f'{($b - $a) / ($tb - $ta):.2f}')")
  echo "$STAGE, $slots slots: $((b - a)) calls in $((tb - ta)) s = $rate calls/s"
  echo "| $(date +%F) | $STAGE | $THREADS | $slots | $((b - a)) | $((tb - ta)) | $rate |" >> "$RESULTS"
  rm -f "$log"
done
