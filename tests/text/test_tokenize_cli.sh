#!/usr/bin/env bash
# `ldm tokenize` on the 1200-prompt golden (exact ids, embedded vocabulary),
# with --pad 0, and usage errors.
set -u
ldm=${LDM_EXE:?}; g=${LDM_GOLDEN_DIR:?}/text
fail=0; n=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ok() { n=$((n+1)); echo "ok   $1"; }
bad() { n=$((n+1)); fail=$((fail+1)); echo "FAIL $1"; }
if "$ldm" tokenize < "$g/prompts.txt" > "$tmp/out.txt" && cmp -s "$tmp/out.txt" "$g/tokens_clip.txt"; then
  ok "tokenize: $(wc -l < "$tmp/out.txt") prompts exact (tol: exact)"
else
  bad "tokenize differs: $(cmp "$tmp/out.txt" "$g/tokens_clip.txt" 2>&1 | head -1)"
fi
printf 'a photo of a cat\n' | "$ldm" tokenize --pad 0 > "$tmp/p0.txt"
want="49406 320 1125 539 320 2368 49407$(printf ' 0%.0s' $(seq 70))"
if [ "$(cat "$tmp/p0.txt")" = "$want" ]; then ok "--pad 0"; else bad "--pad 0: $(cat "$tmp/p0.txt")"; fi
"$ldm" tokenize --bogus < /dev/null > /dev/null 2>&1; rc=$?
if [ $rc = 2 ]; then ok "unknown option rc=2"; else bad "unknown option rc=$rc"; fi
"$ldm" tokenize --model "$tmp/none.safetensors" < /dev/null > /dev/null 2> "$tmp/err"; rc=$?
if [ $rc = 1 ] && grep -q none.safetensors "$tmp/err"; then ok "missing model rc=1"; else bad "missing model rc=$rc $(cat "$tmp/err")"; fi
echo "tokenize-cli: $n checks, $fail failed"
[ $fail = 0 ]
