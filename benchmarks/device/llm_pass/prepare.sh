#!/usr/bin/env bash
# Here: fill the git-ignored .devcarry/llm1..3 with what a bare GPU machine needs for an LLM pass on Beauty
# with the embedded llama.cpp server on its 16 cores: cp312 wheels (the LLM layer's and RecBole's, without
# their deps; xllamacpp's CPU build), Beauty's atomic files (xz), and the bundled GGUF cut in two, since one
# call carries at most 64 MiB. Each folder is carried by one call (setup.sh says which).
# usage: benchmarks/device/llm_pass/prepare.sh [DATA_DIR]   (DATA_DIR default ../shared/data/beauty)
set -euo pipefail
cd "$(dirname "$0")/../../.."
data=${1:-../shared/data/beauty}
py=${PY:-.venv/bin/python}
for name in inter item; do
  [ -f "$data/beauty.$name" ] || { echo "error: $data/beauty.$name is missing (DATA_DIR: Beauty's atomic files)" >&2; exit 1; }
done
gguf=$("$py" -c "from recbole_llmaug.llm.local_server import bundled_gguf_path as p; print(p())")
rm -rf .devcarry/llm1 .devcarry/llm2 .devcarry/llm3
mkdir -p .devcarry/llm1/whl .devcarry/llm1/beauty .devcarry/llm2 .devcarry/llm3
# RecBole's (wheels.sh) and the LLM layer's, versions as in this checkout's environment
bash benchmarks/device/wheels.sh .devcarry/llm1/whl openai==3.54.0 pydantic==2.14.4 pydantic_core==2.50.5 jiter==0.19.0 \
  sniffio==1.3.1 annotated-types==0.8.0 typing-inspection==0.4.5 httpx2==2.16.2 httpcore2==2.16.2 \
  truststore==0.10.5 jsonschema==4.26.0 referencing==0.37.0 rpds-py==2026.9.1 \
  jsonschema-specifications==2025.9.1 xllamacpp==2026.10.11549
for name in inter item; do xz -T2 -6 -c "$data/beauty.$name" > ".devcarry/llm1/beauty/beauty.$name.xz"; done
sha256sum "$gguf" | cut -d' ' -f1 > .devcarry/llm1/gguf.sha256
"$py" benchmarks/device/llm_pass/split_hash.py --data_path "$(dirname "$data")" 2>/dev/null | tail -1 > .devcarry/llm1/split.sha256
half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
head -c "$half" "$gguf" > .devcarry/llm2/gguf.part1
tail -c +"$((half + 1))" "$gguf" > .devcarry/llm3/gguf.part2
du -sh .devcarry/llm1 .devcarry/llm2 .devcarry/llm3
