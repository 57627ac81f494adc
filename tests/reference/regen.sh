#!/usr/bin/env bash
# Regenerates every committed golden under tests/golden with the pinned
# reference stack. Usage: tests/reference/regen.sh [VENV]
#   VENV defaults to $LDM_REF_VENV or ../refvenv (created from
#   requirements.txt when missing; kept outside the checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${1:-${LDM_REF_VENV:-$root/../refvenv}}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -r "$here/requirements.txt"
fi
cd "$root"
# make_controlnet.py builds on make_pipeline.py's models: it runs last
for s in "$here"/make_*.py; do
  [ "$(basename "$s")" = make_controlnet.py ] && continue
  echo "== $(basename "$s")"
  "$venv/bin/python" "$s"
done
echo "== make_controlnet.py"
"$venv/bin/python" "$here/make_controlnet.py"
