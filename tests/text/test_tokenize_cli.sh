#!/usr/bin/env bash
# `ldm tokenize` on the 1200-prompt golden (exact ids, embedded vocabulary),
# with --pad 0, and usage errors.
set -u
ldm=${LDM_EXE:?}; g=${LDM_GOLDEN_DIR:?}/text
fail=0; n=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ok() { n=$((n+1)); echo "ok   $1"; }
bad() { n=$((n+1)); fail=$((fail+1)); echo "FAIL $1"; }
# the golden lists ids through the end token; the rest of the 77 is padding
awk '{ for (i = NF + 1; i <= 77; i++) $i = 49407; print }' "$g/tokens_clip.txt" > "$tmp/want.txt"
if "$ldm" tokenize < "$g/prompts.txt" > "$tmp/out.txt" && cmp -s "$tmp/out.txt" "$tmp/want.txt" &&
   [ "$(wc -l < "$tmp/out.txt")" -ge 1000 ]; then
  ok "tokenize: $(wc -l < "$tmp/out.txt") prompts exact (tol: exact)"
else
  bad "tokenize differs: $(cmp "$tmp/out.txt" "$tmp/want.txt" 2>&1 | head -1)"
fi
# a diffusers folder's own tokenizer files (2000 merges, pad "!" = 0)
awk '{ for (i = NF + 1; i <= 77; i++) $i = 0; print }' "$g/tokens_tiny.txt" > "$tmp/want_tiny.txt"
head -n "$(wc -l < "$g/tokens_tiny.txt")" "$g/prompts.txt" > "$tmp/p_tiny.txt"
if "$ldm" tokenize --model "$g/sd2" < "$tmp/p_tiny.txt" > "$tmp/out_tiny.txt" &&
   cmp -s "$tmp/out_tiny.txt" "$tmp/want_tiny.txt"; then
  ok "tokenize --model folder: $(wc -l < "$tmp/out_tiny.txt") prompts exact"
else
  bad "tokenize --model folder differs: $(cmp "$tmp/out_tiny.txt" "$tmp/want_tiny.txt" 2>&1 | head -1)"
fi
# single-file checkpoints: embedded vocabulary; SD2 (OpenCLIP) pads with 0
printf 'a photo of a cat\n' | "$ldm" tokenize --model "$g/sd1.safetensors" > "$tmp/s1.txt"
want1="49406 320 1125 539 320 2368 49407$(printf ' 49407%.0s' $(seq 70))"
if [ "$(cat "$tmp/s1.txt")" = "$want1" ]; then ok "single-file sd1"; else bad "single-file sd1: $(cat "$tmp/s1.txt")"; fi
printf 'a photo of a cat\n' | "$ldm" tokenize --model "$g/sd2.safetensors" > "$tmp/s2.txt"
want2="49406 320 1125 539 320 2368 49407$(printf ' 0%.0s' $(seq 70))"
if [ "$(cat "$tmp/s2.txt")" = "$want2" ]; then ok "single-file sd2 pads 0"; else bad "single-file sd2: $(cat "$tmp/s2.txt")"; fi
printf 'a photo of a cat\n' | "$ldm" tokenize --pad 0 > "$tmp/p0.txt"
want="49406 320 1125 539 320 2368 49407$(printf ' 0%.0s' $(seq 70))"
if [ "$(cat "$tmp/p0.txt")" = "$want" ]; then ok "--pad 0"; else bad "--pad 0: $(cat "$tmp/p0.txt")"; fi
# an SD2 folder without tokenizer/: embedded vocabulary, OpenCLIP's pad 0
cp -r "$g/sd2" "$tmp/sd2" && rm -rf "$tmp/sd2/tokenizer"
printf 'a photo of a cat\n' | "$ldm" tokenize --model "$tmp/sd2" > "$tmp/s3.txt"
if [ "$(cat "$tmp/s3.txt")" = "$want2" ]; then ok "sd2 folder without tokenizer pads 0"; else bad "sd2 folder without tokenizer: $(cat "$tmp/s3.txt")"; fi
"$ldm" tokenize --bogus < /dev/null > /dev/null 2>&1; rc=$?
if [ $rc = 2 ]; then ok "unknown option rc=2"; else bad "unknown option rc=$rc"; fi
"$ldm" tokenize --model "$tmp/none.safetensors" < /dev/null > /dev/null 2> "$tmp/err"; rc=$?
if [ $rc = 1 ] && grep -q none.safetensors "$tmp/err"; then ok "missing model rc=1"; else bad "missing model rc=$rc $(cat "$tmp/err")"; fi
echo "tokenize-cli: $n checks, $fail failed"
[ $fail = 0 ]
