#!/bin/sh
# The full training run behind models/demo: two chains of stages in parallel,
# each process single-threaded and niced (the machine is shared).  About an hour
# of wall time on a loaded 2-core machine; every stage resumes from work/<stage>.pt.
# Afterwards: python export.py && python check.py
set -e
cd "$(dirname "$0")"
PY=${PY:-/work/refvenv/bin/python}
mkdir -p work
( nice -n 10 $PY train.py vae --steps 900 --batch 16 --lr 1.5e-3 &&
  nice -n 10 $PY train.py t2i --minutes 25 --batch 32 --lr 1e-3 &&
  nice -n 10 $PY train.py inpaint --minutes 8 --batch 32 --lr 5e-4 ) > work/chain-a.out 2>&1 &
( nice -n 10 $PY train.py x4vae --minutes 12 --batch 16 --lr 1.5e-3 &&
  nice -n 10 $PY train.py x4 --minutes 18 --batch 32 --lr 1e-3 ) > work/chain-b.out 2>&1 &
wait
