#!/usr/bin/env bash
# Download into DEST the cp312 wheels a lent machine's image lacks for RecBole (RecBole 1.2.1 without its deps,
# pandas<3 as setup.cfg pins, their small deps) plus any REQUIREMENT given, without their deps.
# Used by pack.sh (benchmarks) and llm_pass/prepare.sh (the LLM pass adds its own).
# usage: benchmarks/device/wheels.sh DEST [REQUIREMENT ...]
set -euo pipefail
dest=${1:?usage: wheels.sh DEST [REQUIREMENT ...]}
shift
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" pandas==2.3.3 pytz tzdata recbole==1.2.1 colorlog==4.7.2 texttable==1.7.2 \
  thop==0.1.1.post2209072238 "$@"
