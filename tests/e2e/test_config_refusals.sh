#!/usr/bin/env bash
# Models the engine does not implement are refused, not mis-run, and one
# error gives one exit code in every command (issue: layering and refusals):
#  - a diffusers model (copy of tests/golden/pipeline/sd1) whose config asks
#    for UNet act_fn "mish", downsample_padding 0, VAE act_fn "mish" or text
#    hidden_act "gelu_new": `ldm eval <component>` and `ldm txt2img` both
#    exit 1 with "ldm: <file>: <key> = <value> is not supported";
#  - a group count that does not divide the channels (unet and vae
#    norm_num_groups 3): exit 2 in `eval unet`, `eval vae-decode` and txt2img;
#  - `ldm eval` --options: an unknown key is exit 2 naming the component's
#    valid keys, for every component;
#  - `ldm eval` reads the file's own "ldm.options" metadata as the jobs do:
#    pipeline/sd1.safetensors (unet.heads=2, unet.groups=4, vae.groups=4,
#    text.heads=2) runs without --options, and gives the same bytes as with
#    those options given (and other bytes than text heads=1); the tensors are
#    compared, the header's metadata (timings) left out.
# Tolerance: exact (exit codes, messages, byte-identical outputs).
set -u
ldm=${LDM_EXE:?}
g=${LDM_GOLDEN_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
# expect DESC RC TEXT cmd...: exit code RC and a first stderr line "ldm: ...TEXT..."
expect() {
  local desc=$1 want=$2 text=$3; shift 3
  "$@" >"$tmp/stdout" 2>"$tmp/err"; local rc=$?
  local first; first=$(head -1 "$tmp/err")
  if [ "$rc" = "$want" ] && [[ "$first" == "ldm: "*"$text"* ]]; then ok "$desc -> rc $rc: $first"
  else bad "$desc: rc=$rc (want $want, '$text'): $(head -c 600 "$tmp/err")"; fi
}
# model PART KEY JSON: a copy of the sd1 folder with PART/config.json's KEY set to JSON
model() {
  local d=$tmp/m-$1-$2; rm -rf "$d"; cp -r "$g/pipeline/sd1" "$d"
  python3 - "$d/$1/config.json" "$2" "$3" <<'PY'
import json, sys
p, k, v = sys.argv[1:]
c = json.load(open(p)); c[k] = json.loads(v); json.dump(c, open(p, "w"), indent=2)
PY
  echo "$d"
}
# inputs for the sd1 pipeline model's components (F32 safetensors, plain python)
python3 - "$tmp" <<'PY' || { echo "FAIL fixtures"; exit 1; }
import json, struct, sys, random
def write(path, tensors):
    hdr, data = {}, b""
    for name, shape, vals in tensors:
        b = struct.pack("<%df" % len(vals), *vals)
        hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    js = json.dumps(hdr).encode(); js += b" " * ((8 - len(js) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(js)) + js + data)
r = random.Random(7)
n = lambda k: [r.gauss(0, 1) for _ in range(k)]
write(sys.argv[1] + "/unet_in.safetensors", [("sample", [1, 4, 8, 8], n(256)), ("timestep", [1], [500.0]),
                                             ("encoder_hidden_states", [1, 5, 8], n(40))])
write(sys.argv[1] + "/vae_in.safetensors", [("latent", [1, 4, 8, 8], n(256))])
PY
ids=$g/text/sd1_io.safetensors
o=$tmp/o.safetensors
ev() { "$ldm" eval "$@" --out "$o" --threads 2; }
t2i() { "$ldm" txt2img --model "$1" --prompt "a cat" --steps 1 --width 64 --height 64 --threads 2 --out "$tmp/o.png"; }

echo "# unsupported config values: refused, exit 1, key and value named, in eval and txt2img alike"
m=$(model unet act_fn '"mish"')
expect "eval unet act_fn=mish" 1 'act_fn = "mish" is not supported' ev unet --model "$m" --in "$tmp/unet_in.safetensors"
expect "txt2img act_fn=mish" 1 'act_fn = "mish" is not supported' t2i "$m"
m=$(model unet downsample_padding 0)
expect "eval unet downsample_padding=0" 1 'downsample_padding = 0 is not supported' ev unet --model "$m" --in "$tmp/unet_in.safetensors"
expect "txt2img downsample_padding=0" 1 'downsample_padding = 0 is not supported' t2i "$m"
m=$(model vae act_fn '"mish"')
expect "eval vae-decode vae act_fn=mish" 1 'act_fn = "mish" is not supported' ev vae-decode --model "$m" --in "$tmp/vae_in.safetensors"
expect "txt2img vae act_fn=mish" 1 'act_fn = "mish" is not supported' t2i "$m"
m=$(model text_encoder hidden_act '"gelu_new"')
expect "eval text hidden_act=gelu_new" 1 'hidden_act = "gelu_new" is not supported' ev text --model "$m" --in "$ids"
expect "txt2img hidden_act=gelu_new" 1 'hidden_act = "gelu_new" is not supported' t2i "$m"

echo "# a group count that does not divide the channels: exit 2 everywhere"
m=$(model unet norm_num_groups 3)
expect "eval unet groups 3" 2 "3 GroupNorm groups do not divide" ev unet --model "$m" --in "$tmp/unet_in.safetensors"
expect "txt2img unet groups 3" 2 "3 GroupNorm groups do not divide" t2i "$m"
m=$(model vae norm_num_groups 3)
expect "eval vae-decode groups 3" 2 "not a multiple of norm_num_groups = 3" ev vae-decode --model "$m" --in "$tmp/vae_in.safetensors"
expect "txt2img vae groups 3" 2 "not a multiple of norm_num_groups = 3" t2i "$m"
expect "eval vae-decode --options groups=3" 2 "not a multiple of norm_num_groups = 3" \
  ev vae-decode --model "$g/pipeline/sd1" --in "$tmp/vae_in.safetensors" --options groups=3
expect "eval unet --options groups=3" 2 "3 GroupNorm groups do not divide" \
  ev unet --model "$g/pipeline/sd1" --in "$tmp/unet_in.safetensors" --options groups=3

echo "# eval --options: unknown keys are errors naming the valid ones"
for c in "text:encoder, heads, lora" "vae-encode:precision, groups, tile, overlap" \
         "vae-decode:precision, groups, height, width, tile, overlap" "taesd-encode:precision, taesd" \
         "taesd-decode:precision, taesd" "unet:heads, head_dim, groups, repeat, precision, lora" \
         "esrgan:precision, tile, overlap, repeat" "controlnet:heads, head_dim, groups, precision, repeat"; do
  expect "eval ${c%%:*} --options tiles=2" 2 "eval ${c%%:*} --options: unknown key 'tiles' (valid keys: ${c#*:})" \
    ev "${c%%:*}" --model "$g/pipeline/sd1" --in "$ids" --options tiles=2
done
expect "eval unet --options heads" 2 "'heads' is not key=value" ev unet --model "$g/pipeline/sd1" --in "$ids" --options heads

echo "# eval reads the file's ldm.options metadata"
f=$g/pipeline/sd1.safetensors
same() { # DESC OPTS_A OPTS_B ARGS...: both runs succeed and write the same bytes (or differ, with DESC !)
  local desc=$1 a=$2 b=$3; shift 3
  "$ldm" eval "$@" --out "$tmp/a.safetensors" --threads 2 ${a:+--options "$a"} 2>"$tmp/err" || { bad "$desc: $(cat "$tmp/err")"; return; }
  "$ldm" eval "$@" --out "$tmp/b.safetensors" --threads 2 ${b:+--options "$b"} 2>"$tmp/err" || { bad "$desc: $(cat "$tmp/err")"; return; }
  if python3 - "$tmp/a.safetensors" "$tmp/b.safetensors" <<'PY'; then
import json, struct, sys
def tensors(p):  # name -> raw bytes (the header's metadata, e.g. timings, left out)
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
sys.exit(0 if tensors(sys.argv[1]) == tensors(sys.argv[2]) else 1)
PY
    [[ $desc == !* ]] && bad "$desc: same output" || ok "$desc"
  else
    [[ $desc == !* ]] && ok "$desc" || bad "$desc: outputs differ"
  fi
}
same "eval unet: metadata = --options heads=2,groups=4" "" "heads=2,groups=4" unet --model "$f" --in "$tmp/unet_in.safetensors"
same "eval vae-decode: metadata = --options groups=4" "" "groups=4" vae-decode --model "$f" --in "$tmp/vae_in.safetensors"
same "eval text: metadata = --options heads=2" "" "heads=2" text --model "$f" --in "$ids"
same "!eval text: heads=1 differs from the metadata's 2" "" "heads=1" text --model "$f" --in "$ids"
echo "config-refusals: $pass passed, $fail failed (tol 0)"
[ "$fail" = 0 ]
