"""Goldens for engine/sample: torch.randn on the CPU, diffusers' randn_tensor
with per-image generators, and every sampler's final latent with a
closed-form stand-in denoiser (defined identically in tests/sample/).

Usage: python tests/reference/make_sample.py   (writes tests/golden/sample/)
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "sample")
os.makedirs(OUT, exist_ok=True)


# ---------------------------------------------------------------- randn ----
def make_randn():
    # (seed, shape): odd sizes, numel < 16 (scalar double path), numel % 16
    # != 0 (torch redraws the tail), seeds >= 2**32 (only low 32 bits used).
    cases = [
        (0, [1]), (1, [5]), (2, [15]), (3, [16]), (4, [17]), (5, [31]),
        (6, [3, 5, 7]), (7, [2, 1, 3]), (8, [1, 4, 8, 8]), (9, [1, 4, 9, 7]),
        (42, [4, 64, 64]), (1234, [1, 4, 64, 64]), (2**31 - 1, [33]),
        (2**32 + 5, [33]), (2**63 - 1, [100]), (123456789, [1, 4, 13, 11]),
        (4294967295, [7, 3]), (77, [10000]), (78, [1, 4, 96, 64]),
        (31337, [2, 4, 8, 8]), (5, [3, 3]), (999, [47]),
    ]
    t = {}
    meta = []
    for i, (seed, shape) in enumerate(cases):
        torch.manual_seed(seed)
        t[f"randn_{i}"] = torch.randn(*shape)
        meta.append([seed if seed < 2**63 else seed - 2**64, int(np.prod(shape))])
    t["cases"] = torch.tensor(meta, dtype=torch.int64)
    # Several draws from one generator (the small path caches the second
    # Box-Muller value across calls): seed 11, numels 3, 3, 20, 7, 1, 16, 1.
    seq = [3, 3, 20, 7, 1, 16, 1]
    g = torch.Generator().manual_seed(11)
    t["sequence"] = torch.cat([torch.randn(n, generator=g) for n in seq])
    t["sequence_numels"] = torch.tensor(seq, dtype=torch.int64)
    # diffusers pipelines with a list of generators (seed + i per image).
    from diffusers.utils.torch_utils import randn_tensor
    gens = [torch.Generator().manual_seed(1000 + i) for i in range(3)]
    t["batch_seed1000_3x4x8x8"] = randn_tensor((3, 4, 8, 8), generator=gens)
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(OUT, "randn.safetensors"))
    print("randn: %d cases" % len(cases))


# --------------------------------------------------------------- philox ----
def make_philox():
    """AUTOMATIC1111's "NV" generator (its CPU imitation of
    torch.randn(device='cuda')): modules/rng_philox.py of
    AUTOMATIC1111/stable-diffusion-webui, commit ef1698fd. It is not part of
    this repository: set LDM_A1111_RNG_PHILOX to a local copy of that file to
    regenerate philox.safetensors; without it the committed file is kept."""
    path = os.environ.get("LDM_A1111_RNG_PHILOX")
    if not path:
        print("philox: LDM_A1111_RNG_PHILOX not set, keeping committed golden")
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location("rng_philox", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cases = [(0, [3, 4]), (1, [1, 4, 8, 8]), (42, [4, 64, 64]),
             (2**32 - 1, [17]), (2**32 + 7, [5, 7]), (123456789, [1, 4, 13, 11])]
    t = {}
    meta = []
    for i, (seed, shape) in enumerate(cases):
        g = mod.Generator(seed)
        a = g.randn(shape)
        b = g.randn([5])  # the next draw (offset 1) of the same generator
        t[f"philox_{i}"] = torch.from_numpy(np.ascontiguousarray(a)).float()
        t[f"philox_{i}_next"] = torch.from_numpy(np.ascontiguousarray(b)).float()
        meta.append([seed, int(np.prod(shape))])
    t["cases"] = torch.tensor(meta, dtype=torch.int64)
    save_file(t, os.path.join(OUT, "philox.safetensors"))
    print("philox: %d cases" % len(cases))



# ------------------------------------------------------------- samplers ----
# The stand-in denoiser shared with tests/sample/test_samplers.c:
#   out = x_in * a(t) + w * b(t),  a(t) = 0.6 + 0.3 cos(t / 170),
#   b(t) = 0.2 sin(t / 90 + 0.5)   (a, b rounded to float32; t as the UNet
#   gets it). It is read as epsilon, v or x0 per the case's prediction type.
def standin(w):
    import math

    def f(x_in, t):
        t = float(t.reshape(-1)[0]) if torch.is_tensor(t) else float(t)
        a = np.float32(0.6 + 0.3 * math.cos(t / 170.0))
        b = np.float32(0.2 * math.sin(t / 90.0 + 0.5))
        return x_in * torch.tensor(a) + w * torch.tensor(b)
    return f


SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
            beta_schedule="scaled_linear", set_alpha_to_one=False,
            skip_prk_steps=True, steps_offset=1, clip_sample=False,
            trained_betas=None)

# name -> (diffusers class or "kdiff", overrides, pipeline kwargs)
# The C test (tests/sample/test_samplers.c) builds the same cases.
def sampler_cases():
    import diffusers as d
    E, EA, H, L = (d.EulerDiscreteScheduler, d.EulerAncestralDiscreteScheduler,
                   d.HeunDiscreteScheduler, d.LMSDiscreteScheduler)
    P, DPM, DD, LCM, U = (d.PNDMScheduler, d.DPMSolverMultistepScheduler,
                          d.DDIMScheduler, d.LCMScheduler,
                          d.UniPCMultistepScheduler)
    sde = dict(algorithm_type="sde-dpmsolver++")
    kar = dict(use_karras_sigmas=True)
    zsnr = dict(prediction_type="v_prediction", timestep_spacing="trailing",
                rescale_betas_zero_snr=True)
    return [
        ("euler", E, {}, {}),
        ("euler_a", EA, {}, {}),
        ("heun", H, {}, {}),
        ("lms", L, {}, {}),
        ("lms_karras", L, kar, {}),
        ("pndm", P, {}, {}),
        ("dpmpp_2m", DPM, {}, {}),
        ("dpmpp_2m_karras", DPM, kar, {}),
        ("dpmpp_2m_sde", DPM, sde, {}),
        ("dpmpp_2m_sde_karras", DPM, dict(sde, **kar), {}),
        ("dpmpp_2s_a", "kdiff", {}, {}),
        ("dpmpp_2s_a_karras", "kdiff", kar, {}),
        ("dpmpp_2s_a_sgm_uniform", "kdiff", dict(sgm_uniform=True), {}),
        ("k_euler", "kdiff", dict(fn="sample_euler"), {}),
        ("k_euler_a", "kdiff", dict(fn="sample_euler_ancestral"), {}),
        ("k_heun", "kdiff", dict(fn="sample_heun"), {}),
        ("k_lms", "kdiff", dict(fn="sample_lms"), {}),
        ("k_lms_karras", "kdiff", dict(fn="sample_lms", **kar), {}),
        ("k_dpmpp_2m", "kdiff", dict(fn="sample_dpmpp_2m"), {}),
        ("k_dpmpp_2m_karras", "kdiff", dict(fn="sample_dpmpp_2m", **kar), {}),
        ("k_euler_a_v", "kdiff", dict(fn="sample_euler_ancestral", v=True), {}),
        ("dpmpp_2s_a_v", "kdiff", dict(v=True), {}),
        ("ddim", DD, {}, {}),
        ("ddim_eta05", DD, {}, dict(eta=0.5)),
        ("lcm", LCM, {}, {}),
        ("unipc", U, {}, {}),
        ("euler_v_zsnr", E, zsnr, {}),
        ("euler_a_v_zsnr", EA, zsnr, {}),
        ("dpmpp_2m_v", DPM, dict(prediction_type="v_prediction"), {}),
        ("unipc_v_zsnr", U, zsnr, {}),
        ("ddim_v_zsnr", DD, zsnr, {}),
        ("lcm_v", LCM, dict(prediction_type="v_prediction"), {}),
        ("euler_x0_leading", E, dict(prediction_type="sample",
                                     timestep_spacing="leading"), {}),
        ("euler_karras", E, kar, {}),
        ("euler_exponential", E, dict(use_exponential_sigmas=True), {}),
        ("euler_sgm_uniform", E, {}, dict(sgm_uniform=True)),
        ("heun_leading", H, dict(timestep_spacing="leading"), {}),
        # SDXL's scheduler_config sets timestep_spacing="leading"
        ("euler_leading", E, dict(timestep_spacing="leading"), {}),
        ("euler_a_leading", EA, dict(timestep_spacing="leading"), {}),
        ("unipc_leading", U, dict(timestep_spacing="leading"), {}),
        ("dpmpp_2m_trailing", DPM, dict(timestep_spacing="trailing"), {}),
        ("dpmpp_2m_leading", DPM, dict(timestep_spacing="leading"), {}),
        ("ddim_linear_betas", DD, dict(beta_schedule="linear",
                                       beta_start=0.0001, beta_end=0.02), {}),
        ("ddim_cosine_v", DD, dict(beta_schedule="squaredcos_cap_v2",
                                   timestep_spacing="linspace",
                                   prediction_type="v_prediction"), {}),
        ("pndm_linspace", P, dict(timestep_spacing="linspace"), {}),
    ]


def seedflow_run(cls, overrides, steps, shape, model, seeds):
    """txt2img as StableDiffusionPipeline: the initial latents and then every
    step's noise come from the same generator(s) (one per image)."""
    from diffusers.utils.torch_utils import randn_tensor
    sched = cls.from_config(SD15, **overrides)
    sched.set_timesteps(steps)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    gen = gens if len(gens) > 1 else gens[0]
    latents = randn_tensor(shape, generator=gen) * sched.init_noise_sigma
    for t in sched.timesteps:
        x_in = sched.scale_model_input(latents, t)
        latents = sched.step(model(x_in, t), t, latents, generator=gen).prev_sample
    return latents


def kdiff_run(overrides, steps, noise, model, seed, acp, x0=None,
              strength=None):
    from k_diffusion import external, sampling

    class Inner(torch.nn.Module):
        def forward(self, x, t):
            return model(x, t)
    if overrides.get("v"):
        den = external.DiscreteVDDPMDenoiser(Inner(), acp, quantize=False)
    else:
        den = external.DiscreteEpsDDPMDenoiser(Inner(), acp, quantize=False)
    if overrides.get("use_karras_sigmas"):
        sigmas = sampling.get_sigmas_karras(steps, den.sigma_min.item(),
                                            den.sigma_max.item())
    elif overrides.get("sgm_uniform"):  # ComfyUI's sgm_uniform on this schedule
        t = torch.linspace(len(den.sigmas) - 1, 0, steps + 1)[:-1]
        sigmas = sampling.append_zero(den.t_to_sigma(t))
    else:
        sigmas = den.get_sigmas(steps)
    full = sigmas
    if strength is None:
        x = noise * sigmas[0]
    else:
        # AUTOMATIC1111 sd_samplers_common.setup_img2img_steps
        # (img2img_fix_steps off) and KDiffusionSampler.sample_img2img
        t_enc = int(min(strength, 0.999) * steps)
        sigmas = sigmas[steps - t_enc - 1:]
        x = x0 + noise * sigmas[0]
    torch.manual_seed(seed)  # step noise: randn_like on the default generator
    fn = getattr(sampling, overrides.get("fn", "sample_dpmpp_2s_ancestral"))
    out = fn(den, x, sigmas, disable=True)
    return out, den.sigma_to_t(full[:-1]), full


def diffusers_run(cls, overrides, kw, steps, noise, model, seeds, x0=None,
                  strength=None, mask=None):
    """StableDiffusion(Img2Img/Inpaint)Pipeline's denoising loop."""
    import inspect
    sched = cls.from_config(SD15, **overrides)
    if kw.get("sgm_uniform"):
        from k_diffusion import external
        den = external.DiscreteEpsDDPMDenoiser(None, sched.alphas_cumprod,
                                               quantize=False)
        t = torch.linspace(999, 0, steps + 1)[:-1]
        sig = torch.cat([den.t_to_sigma(t), torch.zeros(1)])
        sched.set_timesteps(sigmas=sig.tolist())
    else:
        sched.set_timesteps(steps)
    timesteps = sched.timesteps
    order = getattr(sched, "order", 1)
    if strength is None:
        latents = noise * sched.init_noise_sigma
    else:
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        timesteps = sched.timesteps[t_start * order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * order)
        latents = sched.add_noise(x0, noise, timesteps[:1])
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    gen = gens if len(gens) > 1 else gens[0]
    params = set(inspect.signature(sched.step).parameters)
    extra = {}
    if "generator" in params:
        extra["generator"] = gen
    if "eta" in params:
        extra["eta"] = kw.get("eta", 0.0)
    for i, t in enumerate(timesteps):
        x_in = sched.scale_model_input(latents, t)
        out = model(x_in, t)
        latents = sched.step(out, t, latents, **extra).prev_sample
        if mask is not None:
            proper = x0
            if i < len(timesteps) - 1:
                proper = sched.add_noise(x0, noise, torch.tensor([timesteps[i + 1]]))
            latents = (1 - mask) * proper + mask * latents
    sig = getattr(sched, "sigmas", torch.zeros(0))
    return latents, sched.timesteps, sig, float(sched.init_noise_sigma)


def make_samplers():
    import diffusers
    diffusers.utils.logging.set_verbosity_error()
    g = torch.Generator().manual_seed(2024)
    noise = torch.randn(1, 4, 8, 8, generator=g)
    w = torch.randn(1, 4, 8, 8, generator=g) * 0.5
    x0 = torch.randn(1, 4, 8, 8, generator=g) * 0.8
    mask = (torch.rand(1, 1, 8, 8, generator=g) > 0.5).float().expand(1, 4, 8, 8)
    mask = mask.clone()
    mask[0, :, 0, :] = 0.25  # a soft edge
    noise2 = torch.randn(2, 4, 8, 8, generator=g)
    w2 = torch.cat([w, w * -0.7])
    model = standin(w)
    seed = 1234
    t = {"noise": noise, "w": w, "x0": x0, "mask": mask, "noise2": noise2}
    for name, cls, ov, kw in sampler_cases():
        for steps in (1, 4, 20):
            key = f"{name}/{steps}"
            if cls == "kdiff":
                acp = diffusers.DDPMScheduler.from_config(SD15).alphas_cumprod
                out, ts, sig = kdiff_run(ov, steps, noise, model, seed, acp)
            else:
                out, ts, sig, _ = diffusers_run(cls, ov, kw, steps, noise, model,
                                                [seed])
            t[key] = out
            t[key + "/timesteps"] = ts.float().clone()
            t[key + "/sigmas"] = torch.as_tensor(sig).float().clone()
    # img2img (strength) and inpaint blending (4-channel UNet)
    cases = dict(sampler_cases_by_name())
    for name in ("euler", "ddim", "dpmpp_2m", "heun", "unipc", "lms", "pndm",
                 "euler_a", "lcm"):
        cls, ov, kw = cases[name]
        for strength in (0.6, 0.35):
            out, _, _, _ = diffusers_run(cls, ov, kw, 20, noise, model, [seed],
                                         x0=x0, strength=strength)
            t[f"img2img/{name}/{strength}"] = out
        out, _, _, _ = diffusers_run(cls, ov, kw, 20, noise, model, [seed],
                                     x0=x0, strength=None, mask=mask)
        t[f"inpaint/{name}"] = out
        out, _, _, _ = diffusers_run(cls, ov, kw, 20, noise, model, [seed],
                                     x0=x0, strength=0.6, mask=mask)
        t[f"inpaint/{name}/0.6"] = out
    acp = diffusers.DDPMScheduler.from_config(SD15).alphas_cumprod
    for name in ("k_euler", "k_euler_a", "k_heun", "k_lms", "k_dpmpp_2m",
                 "k_dpmpp_2m_karras", "dpmpp_2s_a"):
        cls, ov, kw = cases[name]
        for strength in (0.6, 0.35):
            out, _, _ = kdiff_run(ov, 20, noise, model, seed, acp, x0=x0,
                                  strength=strength)
            t[f"img2img/{name}/{strength}"] = out
    # a batch of two with one generator per image (seed + i)
    model2 = standin(w2)
    for name in ("euler_a", "dpmpp_2m_sde", "ddim_eta05"):
        cls, ov, kw = cases[name]
        out, _, _, _ = diffusers_run(cls, ov, kw, 4, noise2, model2,
                                     [seed, seed + 1])
        t[f"batch2/{name}"] = out
    # seeds end to end: latents and step noise from the same generator(s)
    for name in ("euler_a", "dpmpp_2m_sde", "lcm", "ddim_eta05"):
        cls, ov, kw = cases[name]
        if name == "ddim_eta05":
            continue  # eta is a pipeline argument; covered above
        t[f"seedflow/{name}"] = seedflow_run(cls, ov, 8, (1, 4, 8, 8), model, [42])
        t[f"seedflow2/{name}"] = seedflow_run(cls, ov, 8, (2, 4, 8, 8), model2,
                                              [42, 43])
    # classifier-free guidance with rescale, diffusers' own helper
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import \
        rescale_noise_cfg
    u = torch.randn(2, 4, 8, 8, generator=g)
    c = torch.randn(2, 4, 8, 8, generator=g) * 1.3 + 0.1
    t["cfg/uncond"], t["cfg/cond"] = u, c
    for scale, phi in ((7.5, 0.0), (7.5, 0.7), (3.0, 1.0)):
        cfg = u + scale * (c - u)
        if phi > 0:
            cfg = rescale_noise_cfg(cfg, c, guidance_rescale=phi)
        t[f"cfg/{scale}/{phi}"] = cfg
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(OUT, "samplers.safetensors"))
    print("samplers: %d tensors" % len(t))


def sampler_cases_by_name():
    return [(n, (c, o, k)) for n, c, o, k in sampler_cases()]


if __name__ == "__main__":
    what = sys.argv[1:] or ["randn", "philox", "samplers"]
    if "randn" in what:
        make_randn()
    if "philox" in what:
        make_philox()
    if "samplers" in what and "make_samplers" in globals():
        make_samplers()
