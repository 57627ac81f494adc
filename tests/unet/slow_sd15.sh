#!/usr/bin/env bash
# Slow suite: a full-size random-weight SD1.5 UNet built with diffusers
# (fp16, single file and diffusers folder, kept in $LDM_CACHE_DIR, default
# /work/cache/unet, never committed), one eval of a 64x64 latent, batch 2, in
# both layouts; prints max abs error vs diffusers (tol 1e-3) and each time.
# Needs the reference venv ($LDM_REF_VENV, default <repo>/../refvenv).
# Runs sharing the cache wait for each other (flock).
set -eu
root=${LDM_SOURCE_ROOT:?}
venv=${LDM_REF_VENV:-$root/../refvenv}
dir=${LDM_CACHE_DIR:-/work/cache}/unet
threads=${LDM_THREADS:-0}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
nice "$venv/bin/python" "$root/tests/reference/make_unet.py" --slow-sd15 "$dir"
fail=0
out=$(mktemp -d)
for m in sd15.safetensors sd15; do
  t0=$(date +%s.%N)
  "${LDM_EXE:?}" eval unet --model "$dir/$m" --in "$dir/sd15_io.safetensors" \
    --out "$out/out.safetensors" --threads "$threads" || fail=1
  t1=$(date +%s.%N)
  printf 'ldm eval unet %-16s %.1f s (threads %s)\n' "$m" "$(echo "$t1 - $t0" | bc)" "$threads"
  "${TEST_UNET_EXE:?}" --compare "$out/out.safetensors" "$dir/sd15_io.safetensors" 1e-3 || fail=1
  rm -f "$out/out.safetensors"
done
rmdir "$out"
exit $fail
