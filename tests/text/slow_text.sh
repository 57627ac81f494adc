#!/usr/bin/env bash
# Slow suite: full-size random-weight text encoders built with transformers /
# open_clip (fp16, kept in $LDM_CACHE_DIR/text, default /work/cache/text,
# never committed): CLIP-L as an SD1 single file, OpenCLIP-H as an SD2
# single file (24 layers) and as diffusers' conversion (23 layers), and the SD2
# conditioning from both (text.h). Prints max
# abs error vs the reference (tol 1e-4) and each time.
# Needs the reference venv ($LDM_REF_VENV, default <repo>/../refvenv).
set -eu
root=${LDM_SOURCE_ROOT:?}
venv=${LDM_REF_VENV:-$root/../refvenv}
dir=${LDM_CACHE_DIR:-/work/cache}/text
threads=${LDM_THREADS:-0}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
nice "$venv/bin/python" "$root/tests/reference/make_text.py" --slow "$dir"
fail=0
out=$(mktemp -d)
run() { # model io suffix
  t0=$(date +%s.%N)
  "${LDM_EXE:?}" eval text --model "$dir/$1" --in "$dir/$2" --out "$out/out.safetensors" \
    --threads "$threads" || fail=1
  t1=$(date +%s.%N)
  printf 'ldm eval text %-24s %.2f s (threads %s)\n' "$1" "$(echo "$t1 - $t0" | bc)" "$threads"
  "${TEST_TEXT_EXE:?}" --compare "$out/out.safetensors" "$dir/$2" 1e-4 "$3" || fail=1
  rm -f "$out/out.safetensors"
}
run clipl.safetensors clipl_io.safetensors ""
run openclip_h.safetensors openclip_h_io.safetensors ""
run openclip_h openclip_h_io.safetensors "_folder"
# SD2 conditioning from both layouts = diffusers' SD2 text encoder output
"${TEST_TEXT_COND_EXE:?}" --slow-sd2 "$dir" || fail=1
rmdir "$out"
exit $fail
