#!/usr/bin/env bash
# There, after setup.sh 1-3: the LLMRec Beauty pass's item attributes, then user profiles, with the
# embedded llama.cpp server at SLOTS slots (default 16) and THREADS threads (default 16), for at most $1
# seconds (default 450). The first call unpacks the committed parts (benchmarks/results/llmrec_beauty_llm_pass,
# they travel with the tree) into the cache, so nothing answered here or there is asked again; each call ends
# by packing what the parts lack into $OUT/dev.tgz. Call again while the machine is warm to go on (the
# cache in /tmp stays). Here: merge it into the pass's cache with
#   .venv/bin/python benchmarks/llm_pass_archive.py unpack --dataset beauty --augment_path ../runs/lrb/data \
#     --cache_dir ../runs/lrb/cache --archive <files_at>/dev.tgz
# and the next part of llmrec_beauty_pass.sh carries the answers. The outputs themselves (embeddings) are
# made here: the embedding model is not carried, so each stage ends in an error once its LLM answers are in.
# SIGINT cannot stop the CLI there (the tool's shell starts it with SIGINT ignored): the time limit sends
# SIGTERM; every answer is committed to the cache as it arrives, so nothing but calls in flight is lost.
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks/device/ray_shim HF_HUB_OFFLINE=1
slots=${SLOTS:-16}; threads=${THREADS:-16}; end=$((SECONDS + ${1:-450}))
parts=benchmarks/results/llmrec_beauty_llm_pass
archive=(--dataset beauty --augment_path /tmp/lrb/data --cache_dir /tmp/lrb/cache)
if [ ! -f /tmp/lrb/cache/chat.sqlite ]; then
  python3 benchmarks/llm_pass_archive.py unpack "${archive[@]}" --archive $parts || exit 1
fi
for output in llmrec_item_attributes llmrec_user_profiles; do
  left=$((end - SECONDS)); [ $left -lt 30 ] && break
  if [ $output = llmrec_user_profiles ]; then  # its prompts come from the split: only if it is the checkout's
    split=$(python3 benchmarks/device/llm_pass/split_hash.py --data_path /tmp/data 2>/dev/null | tail -1)
    [ "$split" = "$(cat /tmp/llm_pass/split.sha256)" ] || { echo "the split here differs from the checkout's: profiles left to it"; break; }
    left=$((end - SECONDS)); [ $left -lt 30 ] && break
  fi
  timeout -s TERM $left python3 run_recbole_llmaug.py --augment=$output --model=LLMRec --dataset=beauty \
    --data_path=/tmp/data --split_seed=2020 --augment_path=/tmp/lrb/data --llmaug_cache_dir=/tmp/lrb/cache \
    --llm_threads=$threads --llm_parallel=$slots --llm_concurrency=$slots > /tmp/llm_pass/$output.log 2>&1
  echo "$output: exit $?; $(tr '\r' '\n' < /tmp/llm_pass/$output.log | grep -E 'calls=|rror' | tail -1 | cut -c1-300)"
done
python3 -c "import sqlite3; print('answers cached:', sqlite3.connect('/tmp/lrb/cache/chat.sqlite').execute('select count(*) from chat').fetchone()[0])"
rm -rf /tmp/llm_pass/parts && cp -r $parts /tmp/llm_pass/parts  # a part of only what the committed ones lack
before=$(ls /tmp/llm_pass/parts | wc -l)
python3 benchmarks/llm_pass_archive.py pack "${archive[@]}" --archive /tmp/llm_pass/parts --outputs itemattr userprof
[ "$(ls /tmp/llm_pass/parts | wc -l)" -gt "$before" ] && cp "$(ls /tmp/llm_pass/parts/part-*.tgz | sort | tail -1)" "$OUT/dev.tgz"
