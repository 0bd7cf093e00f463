#!/usr/bin/env bash
# Fill .devcarry/ (git-ignored) with what a bare GPU machine needs to run a benchmark on Beauty:
# wheels its image lacks (cp312) and the data plus the augmentor's outputs, xz-compressed (< 64 MiB).
# usage: benchmarks/device/pack.sh AUGMENTED_DIR [DATA_DIR [OUTPUT ...]]
#   AUGMENTED_DIR holds beauty.<OUTPUT> and its manifest for each OUTPUT (the augmentor's outputs);
#   OUTPUTs default to LLM-ESR's (itememb simuser); LLMSeR adds ccgcand arvcand pseudo.llm-ids arv.llm
set -euo pipefail
aug=${1:?usage: pack.sh AUGMENTED_DIR [DATA_DIR [OUTPUT ...]]}
data=${2:-../shared/data/beauty}
shift $(( $# < 2 ? $# : 2 ))
outputs=("$@")
[ ${#outputs[@]} -gt 0 ] || outputs=(itememb simuser)
for name in "${outputs[@]}"; do  # all there before anything is fetched or replaced
  for file in "$aug/beauty.$name" "$aug/beauty.$name.manifest.json"; do
    [ -f "$file" ] || { echo "error: $file is missing: build it with the augmentor first (README: Benchmarks)" >&2; exit 1; }
  done
done
for name in inter item; do
  [ -f "$data/beauty.$name" ] || { echo "error: $data/beauty.$name is missing (DATA_DIR: Beauty's atomic files)" >&2; exit 1; }
done
rm -rf .devcarry/data
mkdir -p .devcarry/whl .devcarry/data
# pandas<3 as in setup.cfg (the image's numpy 2 is handled by recbole_llmaug.compat); RecBole without its deps
bash "$(dirname "$0")/wheels.sh" .devcarry/whl
for name in inter item; do xz -T2 -6 -c "$data/beauty.$name" > ".devcarry/data/beauty.$name.xz"; done
for name in "${outputs[@]}"; do
  xz -T2 -6 -c "$aug/beauty.$name" > ".devcarry/data/beauty.$name.xz"
  cp -L "$aug/beauty.$name.manifest.json" .devcarry/data/
done
du -sh .devcarry
