#!/usr/bin/env bash
# `ldm info` on the tiny golden UNets: the family, prediction and input
# channels it prints for each family, in both layouts. Exact checks.
set -u
g=${LDM_GOLDEN_DIR:?}/unet
fail=0
expect() { # model family prediction channels
  out=$("${LDM_EXE:?}" info "$g/$1" 2>&1)
  fam=$(sed -n 's/^family: *//p' <<<"$out")
  pred=$(sed -n 's/^prediction: *//p' <<<"$out")
  ch=$(sed -n 's/^unet input: *\([0-9]*\).*/\1/p' <<<"$out")
  if [ "$fam" = "$2" ] && [ "$pred" = "$3" ] && [ "$ch" = "$4" ]; then
    echo "ok   $1: $fam $pred $ch"
  else
    echo "FAIL $1: got '$fam' '$pred' '$ch', expected '$2' '$3' '$4'"; echo "$out"; fail=1
  fi
}
expect sd1 sd1 epsilon 4
expect sd1.safetensors sd1 epsilon 4
expect sd1_inpaint sd1-inpaint epsilon 9
expect sd1_inpaint.safetensors sd1-inpaint epsilon 9
expect sd2 sd2 v 4
expect sdxl sdxl epsilon 4
expect sdxl.safetensors sdxl epsilon 4
expect x4 x4-upscaler v 7
expect x4.safetensors x4-upscaler v 7
expect lcm sd1 epsilon 4
[ $fail = 0 ] && echo "unet-info-cli: all passed"
exit $fail
