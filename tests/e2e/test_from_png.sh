#!/usr/bin/env bash
# --from-png round trip with fractional CFG scales: the parameters chunk
# written by `ldm` must give back the same float (4.5, 7.25), not its integer
# part, so the image made from the PNG is the same image, bit for bit. A run
# at the integer part must give another image (else the check could not fail).
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}
m=${LDM_GOLDEN_DIR:?}/pipeline/sd1.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
gen() { "$ldm" txt2img --model "$m" --prompt "a (red:1.1) circle" --negative-prompt blue --width 32 --height 24 \
          --steps 3 --sampler euler --seed 21 --threads 2 "$@" >"$tmp/out.log" 2>&1; }

for cfg in 4.5 7.25; do
  if gen --cfg-scale "$cfg" --out "$tmp/a$cfg.png" && "$ldm" info "$tmp/a$cfg.png" | grep -q "CFG scale: $cfg,"; then
    ok "CFG $cfg stored as 'CFG scale: $cfg'"
  else bad "CFG $cfg not stored: $(tail -1 "$tmp/out.log")"; fi
  if gen --cfg-scale "${cfg%%.*}" --out "$tmp/int$cfg.png" && "$cmp" differs "$tmp/int$cfg.png" "$tmp/a$cfg.png" >/dev/null; then
    ok "CFG ${cfg%%.*} draws another image than CFG $cfg"
  else bad "CFG ${cfg%%.*} and $cfg give the same image: this check cannot fail"; fi
  if "$ldm" txt2img --model "$m" --from-png "$tmp/a$cfg.png" --threads 2 --out "$tmp/b$cfg.png" >"$tmp/out.log" 2>&1 &&
     "$cmp" psnr "$tmp/b$cfg.png" "$tmp/a$cfg.png" 99 >/dev/null &&
     "$ldm" info "$tmp/b$cfg.png" | grep -q "CFG scale: $cfg,"; then
    ok "--from-png with CFG $cfg reproduces the image exactly"
  else bad "--from-png with CFG $cfg: $(tail -1 "$tmp/out.log")"; fi
done
echo "from-png: $pass passed, $fail failed"
[ $fail = 0 ]
