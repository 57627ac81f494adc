#!/usr/bin/env bash
# `ldm samplers` lists every sampler with its reference; a stray argument is a
# usage error (exit 2). Tolerance: exact text match of each expected line.
set -u
exe=${LDM_EXE:?LDM_EXE not set}
fail=0
out=$("$exe" samplers) || { echo "FAIL: ldm samplers exited $?"; exit 1; }
expect=(
  "euler|diffusers EulerDiscreteScheduler"
  "euler_a|diffusers EulerAncestralDiscreteScheduler"
  "heun|diffusers HeunDiscreteScheduler"
  "lms|diffusers LMSDiscreteScheduler"
  "pndm|diffusers PNDMScheduler"
  "dpmpp_2m|diffusers DPMSolverMultistepScheduler"
  "dpmpp_2m_karras|diffusers DPMSolverMultistepScheduler(use_karras_sigmas=True)"
  "dpmpp_2m_sde|diffusers DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++')"
  "dpmpp_2s_a|k-diffusion sample_dpmpp_2s_ancestral"
  "ddim|diffusers DDIMScheduler"
  "lcm|diffusers LCMScheduler"
  "unipc|diffusers UniPCMultistepScheduler"
)
for e in "${expect[@]}"; do
  name=${e%%|*}
  ref=${e#*|}
  line=$(printf '%s\n' "$out" | awk -v n="$name" '$1 == n')
  if [[ -z "$line" || "$line" != *"$ref"* ]]; then
    echo "FAIL: no line '$name ... $ref' in:"; printf '%s\n' "$out"; fail=1
  fi
done
"$exe" samplers bogus >/dev/null 2>&1
rc=$?
if [[ $rc -ne 2 ]]; then echo "FAIL: stray argument exited $rc, expected 2"; fail=1; fi
n=$(printf '%s\n' "$out" | awk 'NF == 0 { exit } { c++ } END { print c }')
echo "sample-cli: ${#expect[@]} names checked, $((n - 1)) listed, usage rc=$rc"
exit $fail
