#!/usr/bin/env bash
# On the GPU machine: wait until the benchmark ends or $1 seconds pass, then copy its tables, records
# and logs to $OUT (the device tool brings them back). Call again, within the machine's warm time, to go on.
end=$(( $(date +%s) + ${1:?seconds} ))
while [ "$(date +%s)" -lt "$end" ] && pgrep -f "bench_llm[a-z]*.py run" > /dev/null; do sleep 10; done
pgrep -f "bench_llm[a-z]*.py run" > /dev/null && echo RUNNING || echo FINISHED
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
cp /tmp/res/*.md /tmp/res/*.json /tmp/res/*.txt /tmp/res/bench.log "$OUT"/ 2>/dev/null
tar czf "$OUT"/logs.tgz -C /tmp/work logs 2>/dev/null
grep -E "done in|FAILED" /tmp/res/bench.log | cut -c1-200
