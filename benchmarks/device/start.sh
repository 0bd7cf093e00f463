#!/usr/bin/env bash
# On the GPU machine: install .devcarry's wheels, unpack Beauty and its augmented files, start
# benchmarks/bench_$BENCH.py run (BENCH: llmesr by default, or llmser; arguments passed through)
# detached, so it outlives this call.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${BENCH:-llmesr}
[ -f "benchmarks/bench_$bench.py" ] || { echo "error: BENCH=$bench: no benchmarks/bench_$bench.py (llmesr or llmser)" >&2; exit 1; }
[ -d .devcarry/whl ] || { echo "error: no .devcarry/: run benchmarks/device/pack.sh here and carry .devcarry" >&2; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/benchmarks/device/ray_shim
mkdir -p /tmp/data/beauty /tmp/work/beauty /tmp/res
python3 - <<'PY'
import lzma, shutil
from pathlib import Path
for packed in sorted(Path(".devcarry/data").glob("beauty.*.xz")):
    name = packed.name[: -len(".xz")]
    where = "/tmp/data" if name in ("beauty.inter", "beauty.item") else "/tmp/work"  # the dataset; the outputs
    with lzma.open(packed) as src, open(f"{where}/beauty/{name}", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
cp .devcarry/data/*.manifest.json /tmp/work/beauty/
sha256sum /tmp/data/beauty/* /tmp/work/beauty/beauty.* | grep -v manifest > /tmp/res/sha256.txt
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import sys, numpy, pandas, scipy, sklearn, torch, recbole; print(sys.version); print('numpy', numpy.__version__, 'pandas', pandas.__version__, 'scipy', scipy.__version__, 'sklearn', sklearn.__version__, 'torch', torch.__version__, torch.cuda.is_available(), 'recbole', recbole.__version__)"
} > /tmp/res/env.txt
cat /tmp/res/env.txt
PYTHONUNBUFFERED=1 setsid nohup python3 "benchmarks/bench_$bench.py" run "$@" --no_augment --device gpu \
  --data_path /tmp/data --work_dir /tmp/work --results "/tmp/res/$bench" > /tmp/res/bench.log 2>&1 < /dev/null &
echo started
