#!/usr/bin/env bash
# Slow suite: a full-size random-weight SD1.5 VAE built with diffusers (fp16,
# single file and diffusers folder, kept in $LDM_CACHE_DIR/vae, default
# /work/cache/vae, never committed): encode of a 128x128 image and decode of a
# 16x16 latent in both layouts through `ldm eval`; prints max abs error vs
# diffusers (tol 1e-3) and each time. Needs the reference venv
# ($LDM_REF_VENV, default <repo>/../refvenv). Runs sharing the cache wait for
# each other (flock).
set -eu
root=${LDM_SOURCE_ROOT:?}
venv=${LDM_REF_VENV:-$root/../refvenv}
dir=${LDM_CACHE_DIR:-/work/cache}/vae
threads=${LDM_THREADS:-0}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
nice "$venv/bin/python" "$root/tests/reference/make_vae.py" --slow-sd15 "$dir"
fail=0
out=$(mktemp -d)
for m in sd15-vae.safetensors sd15-vae; do
  for c in encode decode; do
    t0=$(date +%s.%N)
    "${LDM_EXE:?}" eval "vae-$c" --model "$dir/$m" --in "$dir/sd15-vae_${c:0:3}_in.safetensors" \
      --out "$out/out.safetensors" --threads "$threads" || fail=1
    t1=$(date +%s.%N)
    printf 'ldm eval vae-%s %-22s %.1f s (threads %s)\n' "$c" "$m" "$(echo "$t1 - $t0" | bc)" "$threads"
    if [ "$c" = encode ]; then pairs="mean=enc_mean logvar=enc_logvar"; else pairs="image=dec_image"; fi
    # shellcheck disable=SC2086
    "${TEST_VAE_EXE:?}" --compare "$out/out.safetensors" "$dir/sd15-vae_io.safetensors" 1e-3 $pairs || fail=1
    rm -f "$out/out.safetensors"
  done
done
rmdir "$out"
exit $fail
