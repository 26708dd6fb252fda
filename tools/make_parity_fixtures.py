#!/usr/bin/env python3
"""Generate the Python/transformers parity fixtures for clipscope's Rust tests.

What it does
------------
Builds two tiny, *randomly initialised* Hugging Face ``CLIPModel``s (no hub
download, nothing pretrained), computes reference outputs for them with
``transformers`` in float32, and writes everything the Rust tests need into
``tests/fixtures/parity/``:

    tests/fixtures/parity/
      images/wide.png, tall.png, exact40.png, exact60.png   deterministic test images
      tiny_quick_gelu/   quick_gelu, float32 weights, text context 20 (truncation)
      tiny_gelu/         exact gelu, float16 weights, text context 77
        config.json                 CLIPModel config (save_pretrained)
        model.safetensors           weights (save_pretrained, safe_serialization)
        preprocessor_config.json    CLIP image processor config (save_pretrained)
        reference.safetensors       reference tensors, all float32 (names below)
        reference.json              prompts, token ids/strings, resize/crop geometry

reference.safetensors tensor names (K prompts, P patches, D = projection_dim):
    pixel_values.<image stem>  (3, S, S)   processor output for each image
    image_tokens               (1+P, D)    vision last_hidden_state -> post_layernorm
                                           -> visual_projection, all tokens, wide.png
    image_embeds               (D,)        get_image_features (== image_tokens[0])
    text_tokens.<i>            (T_i, D)    text last_hidden_state (after
                                           final_layer_norm) -> text_projection
    text_embeds.<i>            (D,)        get_text_features (pooled at first EOS)
    dcsm.<i>                   (1+P, T_i)  row-L2-normalised image_tokens @
                                           row-L2-normalised text_tokens.T
    clip_cosine                (K,)        cos(image_embeds, text_embeds.<i>)
    logits_per_image           (K,)        CLIPModel forward on the padded batch
    clip_prob                  (K,)        softmax(logits_per_image)
    logit_scale                ()          raw logit_scale parameter (not exp)

Image preprocessing uses transformers' PIL backend (``CLIPImageProcessorPil``,
which serialises as ``"image_processor_type": "CLIPImageProcessor"``): PIL
bicubic resize of the uint8 image (shortest edge -> image_size), centre crop,
``float32(float64(u8) * (1/255))``, then ``(x - mean) / std`` in float32.  This
is the historical "slow" CLIP preprocessing; transformers v5 defaults
``AutoImageProcessor`` to a torchvision backend when torchvision is installed,
which resamples slightly differently (reported by this script if available).

How to run
----------
From the repository root, in an environment with tools/requirements.txt::

    python tools/make_parity_fixtures.py

The output is deterministic (fixed seeds, single-threaded torch).  The
fixtures are committed, so the Rust tests never need Python.  The script also
reloads each saved model with transformers and checks that the weights are
bit-identical and the references reproduce (float32 model: within 1e-6 relative
to each tensor's magnitude; float16 model loaded as float32: exactly).

Weights: HF random init, then every LayerNorm perturbed (w = 1 + 0.3 N, b = 0.2 N),
every Linear bias set to 0.1 N (HF init zeroes them), token/position/class
embeddings scaled up, patch embedding x2.5, q/k x2 and v/out x2.5 so attention
is sharp and matters; so a port that drops an LN, a bias, the causal mask or
pools at the wrong position fails clearly.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import transformers
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPVisionConfig,
    PreTrainedTokenizerFast,
)

try:  # transformers >= 5: PIL backend has its own class name
    from transformers import CLIPImageProcessorPil as PilCLIPImageProcessor
except ImportError:  # transformers 4.x: the default CLIPImageProcessor is PIL-based
    from transformers import CLIPImageProcessor as PilCLIPImageProcessor

try:
    from transformers import CLIPTokenizerFast
except ImportError:  # pragma: no cover
    CLIPTokenizerFast = None

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "parity"
IMAGES_DIR = OUT_DIR / "images"
TOKENIZER_JSON = Path(
    os.environ.get("CLIP_TOKENIZER_JSON", str(REPO_ROOT / "assets" / "clip-tokenizer" / "tokenizer.json"))
)
if not TOKENIZER_JSON.exists():  # fall back to the copy bundled with the crate, if any
    for cand in sorted(REPO_ROOT.glob("**/tokenizer.json")):
        if "target" not in cand.parts and "fixtures" not in cand.parts:
            TOKENIZER_JSON = cand
            break

BOS, EOS = 49406, 49407

PROMPTS = [
    "a red circle above a blue square",
    "a photo of a dog",
    "a dog without a collar",
    "Hello, WORLD! naïve café",
    "a",
    "a small green triangle to the left of a big yellow star and below a purple cross "
    "on a grey background",
]

MODELS = {
    "tiny_quick_gelu": dict(
        seed=1234,
        save_dtype=torch.float32,
        logit_scale=math.log(37.0),
        projection_dim=24,
        text=dict(
            vocab_size=49408,
            hidden_size=16,
            num_attention_heads=2,
            num_hidden_layers=2,
            intermediate_size=40,
            max_position_embeddings=20,
            layer_norm_eps=1e-5,
            hidden_act="quick_gelu",
        ),
        vision=dict(
            hidden_size=48,
            num_attention_heads=3,
            num_hidden_layers=2,
            intermediate_size=96,
            image_size=40,
            patch_size=8,
            layer_norm_eps=1e-5,
            num_channels=3,
            hidden_act="quick_gelu",
        ),
        exact_image="exact40.png",
    ),
    "tiny_gelu": dict(
        seed=5678,
        save_dtype=torch.float16,
        logit_scale=math.log(20.0),
        projection_dim=32,
        text=dict(
            vocab_size=49408,
            hidden_size=32,
            num_attention_heads=4,
            num_hidden_layers=2,
            intermediate_size=64,
            max_position_embeddings=77,
            layer_norm_eps=1e-6,
            hidden_act="gelu",
        ),
        vision=dict(
            hidden_size=64,
            num_attention_heads=4,
            num_hidden_layers=3,
            intermediate_size=128,
            image_size=60,
            patch_size=10,
            layer_norm_eps=1e-6,
            num_channels=3,
            hidden_act="gelu",
        ),
        exact_image="exact60.png",
    ),
}

MAIN_IMAGE = "wide.png"
ATTN_VO_GAIN = 2.5


# --------------------------------------------------------------------------- images
def _gradient_image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * x / (w - 1)
    g = 255.0 * y / (h - 1)
    b = 127.5 + 100.0 * np.sin(2 * math.pi * (x / w + 0.5 * y / h))
    img = np.stack([r, g, b], axis=-1)
    img += rng.normal(0.0, 18.0, size=img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    # a couple of solid rectangles with sharp edges (exercise the resampler)
    x0, y0 = int(w * 0.15), int(h * 0.2)
    img[y0 : y0 + h // 4, x0 : x0 + w // 5] = (250, 20, 30)
    x1, y1 = int(w * 0.6), int(h * 0.55)
    img[y1 : y1 + h // 3, x1 : x1 + w // 4] = (10, 40, 235)
    img[h // 2, :, :] = 255  # a one-pixel white line
    return img


def make_images() -> dict[str, Path]:
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    arrays = {
        "wide.png": _gradient_image(rng, 97, 61),
        "tall.png": _gradient_image(rng, 45, 83),
        "exact40.png": rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8),
        "exact60.png": rng.integers(0, 256, size=(60, 60, 3), dtype=np.uint8),
    }
    paths = {}
    for name, arr in arrays.items():
        p = IMAGES_DIR / name
        Image.fromarray(arr, mode="RGB").save(p, format="PNG", optimize=False)
        back = np.asarray(Image.open(p).convert("RGB"))
        assert np.array_equal(back, arr), name
        paths[name] = p
    return paths


# --------------------------------------------------------------------------- tokenizer
def make_tokenizer():
    kw = dict(
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    plain = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER_JSON), **kw)
    tok = CLIPTokenizerFast(tokenizer_file=str(TOKENIZER_JSON), **kw) if CLIPTokenizerFast else plain
    for t in (tok, plain):
        ids = t("a red square")["input_ids"]
        assert ids == [BOS, 320, 736, 3999, EOS], ids
        assert t.pad_token_id == EOS and t.eos_token_id == EOS and t.bos_token_id == BOS
        assert t.padding_side == "right", t.padding_side
    for p in PROMPTS:
        assert tok(p)["input_ids"] == plain(p)["input_ids"], p
    return tok


def tokenize_prompts(tok, max_len: int) -> list[dict]:
    out = []
    for p in PROMPTS:
        full = tok(p)["input_ids"]
        ids = tok(p, truncation=True, max_length=max_len)["input_ids"]
        assert ids[0] == BOS and ids[-1] == EOS, ids
        assert len(ids) == min(len(full), max_len)
        out.append(
            dict(
                text=p,
                token_ids=[int(i) for i in ids],
                tokens=tok.convert_ids_to_tokens(ids),
                truncated=len(full) > max_len,
            )
        )
    return out


# --------------------------------------------------------------------------- preprocessing
def make_processor(image_size: int):
    return PilCLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )


def resize_geometry(w: int, h: int, s: int):
    """Same arithmetic as transformers.image_transforms.get_resize_output_image_size
    (default_to_square=False) and center_crop."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long / short)
    rw, rh = (new_short, new_long) if w <= h else (new_long, new_short)
    cx, cy = (rw - s) // 2, (rh - s) // 2
    return (rw, rh), (cx, cy, s, s)


# Independent re-implementation of Pillow's BICUBIC resize for 8-bit RGB
# (libImaging/Resample.c), used to pin down the exact algorithm the Rust port
# must follow: Keys cubic with a = -0.5, support 2 * max(in/out, 1) (antialiased
# when downscaling), weights normalised then quantised to 22-bit fixed point
# (round half away from zero), horizontal pass first, intermediate result
# rounded+clamped to u8, then the vertical pass.
_PIL_PRECISION_BITS = 32 - 8 - 2


def _pil_bicubic_filter(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _pil_coeffs(in_size: int, out_size: int):
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    one = 1 << _PIL_PRECISION_BITS
    out = []
    for i in range(out_size):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        n = min(int(center + support + 0.5), in_size) - xmin
        w = [_pil_bicubic_filter((x + xmin - center + 0.5) / filterscale) for x in range(n)]
        tot = sum(w)
        w = [v / tot for v in w] if tot != 0.0 else w
        out.append((xmin, [int(v * one - 0.5) if v < 0 else int(v * one + 0.5) for v in w]))
    return out


def _pil_pass(img: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    src = np.moveaxis(img, axis, 0).astype(np.int64)
    res = np.empty((out_size,) + src.shape[1:], dtype=np.uint8)
    for i, (xmin, k) in enumerate(_pil_coeffs(src.shape[0], out_size)):
        acc = np.full(src.shape[1:], 1 << (_PIL_PRECISION_BITS - 1), dtype=np.int64)
        for j, kk in enumerate(k):
            acc += src[xmin + j] * kk
        res[i] = np.clip(acc >> _PIL_PRECISION_BITS, 0, 255)
    return np.moveaxis(res, 0, axis)


def pil_bicubic_resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8, bit-identical to PIL Image.resize(BICUBIC)."""
    if w != img.shape[1]:
        img = _pil_pass(img, w, 1)
    if h != img.shape[0]:
        img = _pil_pass(img, h, 0)
    return img


def preprocess(proc, path: Path, s: int):
    """Run the HF processor and cross-check it against an explicit re-implementation.
    Returns (pixel_values (3,S,S) float32 np, geometry dict)."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    (rw, rh), crop = resize_geometry(w, h, s)

    pv = proc(images=img, return_tensors="np")["pixel_values"][0]
    assert pv.shape == (3, s, s) and pv.dtype == np.float32, (pv.shape, pv.dtype)

    # The processor's own intermediate resize result.
    try:
        chw = np.moveaxis(np.asarray(img), -1, 0)
        from transformers.image_utils import SizeDict

        resized = proc.resize(
            image=chw, size=SizeDict(shortest_edge=s), resample=proc.resample
        )
        assert resized.shape[-2:] == (rh, rw), (resized.shape, (rh, rw))
    except (TypeError, ImportError):  # different signature in other versions
        resized = None

    # Explicit recipe: PIL bicubic on uint8 (also re-implemented above) -> crop -> f32(f64(u8)/255) -> (x-mean)/std in f32
    if (rw, rh) == (w, h):
        r = np.asarray(img)
    else:
        r = np.asarray(img.resize((rw, rh), resample=Image.Resampling.BICUBIC))
    assert np.array_equal(pil_bicubic_resize(np.asarray(img), rw, rh), r), path.name
    if resized is not None:
        assert np.array_equal(np.moveaxis(resized, 0, -1), r)
    cx, cy, cw, ch = crop
    c = r[cy : cy + ch, cx : cx + cw].astype(np.float64) * (1 / 255)
    c = c.astype(np.float32)
    mean = np.array(proc.image_mean, dtype=np.float32)
    std = np.array(proc.image_std, dtype=np.float32)
    mine = np.moveaxis((c - mean) / std, -1, 0)
    assert np.array_equal(mine, pv), float(np.abs(mine - pv).max())

    geo = dict(original=[w, h], resized=[rw, rh], crop=list(crop))
    return pv.astype(np.float32), geo


def torchvision_backend_diff(s: int, path: Path, pv_pil: np.ndarray):
    """Max |pixel_values(torchvision backend) - pixel_values(PIL backend)|, or None."""
    try:
        import torchvision  # noqa: F401
        from transformers import CLIPImageProcessor as TvProc

        if getattr(TvProc, "__name__", "") == "CLIPImageProcessorPil":
            return None
        tv = TvProc(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
        if getattr(tv, "backend", None) != "torchvision":
            return None
        pv = tv(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"][0]
        return float(np.abs(pv.numpy() - pv_pil).max())
    except Exception:  # torchvision missing or API differences: diagnostics only
        return None


# --------------------------------------------------------------------------- model
def build_model(spec: dict) -> CLIPModel:
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    tc = CLIPTextConfig(
        **spec["text"],
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
        projection_dim=spec["projection_dim"],
    )
    vc = CLIPVisionConfig(**spec["vision"], projection_dim=spec["projection_dim"])
    cfg = CLIPConfig(
        text_config=tc,
        vision_config=vc,
        projection_dim=spec["projection_dim"],
        logit_scale_init_value=spec["logit_scale"],
    )
    cfg._attn_implementation = "eager"
    model = CLIPModel(cfg)
    model.eval()

    g = torch.Generator().manual_seed(spec["seed"] + 1)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    with torch.no_grad():
        n_ln = 0
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.3 * randn(*m.weight.shape))
                m.bias.copy_(0.2 * randn(*m.bias.shape))
                n_ln += 1
            elif isinstance(m, torch.nn.Linear):
                if m.bias is not None:  # HF init zeroes biases; make them matter
                    m.bias.copy_(0.1 * randn(*m.bias.shape))
        expected_ln = (1 + 2 * tc.num_hidden_layers) + (2 + 2 * vc.num_hidden_layers)
        assert n_ln == expected_ln, (n_ln, expected_ln)

        tm, vm = model.text_model, model.vision_model
        tm.embeddings.token_embedding.weight.copy_(0.3 * randn(*tm.embeddings.token_embedding.weight.shape))
        tm.embeddings.position_embedding.weight.copy_(
            0.3 * randn(*tm.embeddings.position_embedding.weight.shape)
        )
        vm.embeddings.class_embedding.copy_(0.5 * randn(*vm.embeddings.class_embedding.shape))
        vm.embeddings.position_embedding.weight.copy_(
            0.5 * randn(*vm.embeddings.position_embedding.weight.shape)
        )
        vm.embeddings.patch_embedding.weight.mul_(2.5)
        # Sharpen attention and strengthen its contribution to the residual stream,
        # so a wrong mask / head split / pooling position is clearly visible (with
        # the default init, prompts of equal length end in near-identical EOS states).
        for enc in (tm.encoder, vm.encoder):
            for layer in enc.layers:
                layer.self_attn.q_proj.weight.mul_(2.0)
                layer.self_attn.k_proj.weight.mul_(2.0)
                layer.self_attn.v_proj.weight.mul_(ATTN_VO_GAIN)
                layer.self_attn.out_proj.weight.mul_(ATTN_VO_GAIN)
        model.logit_scale.fill_(spec["logit_scale"])

        if spec["save_dtype"] == torch.float16:
            for p in model.parameters():
                p.data = p.data.half().float()
    model.float()
    return model


@torch.no_grad()
def compute_references(model: CLIPModel, tok, prompts: list[dict], pixel_values: dict) -> dict:
    ref: dict[str, torch.Tensor] = {}
    for stem, pv in pixel_values.items():
        ref[f"pixel_values.{stem}"] = torch.from_numpy(pv)

    pv = torch.from_numpy(pixel_values[Path(MAIN_IMAGE).stem])[None]
    vout = model.vision_model(pixel_values=pv)
    image_tokens = model.visual_projection(model.vision_model.post_layernorm(vout.last_hidden_state))[0]
    image_embeds = model.get_image_features(pixel_values=pv).pooler_output[0]
    assert torch.allclose(image_embeds, image_tokens[0], atol=1e-6, rtol=0), (
        (image_embeds - image_tokens[0]).abs().max()
    )
    ref["image_tokens"] = image_tokens
    ref["image_embeds"] = image_embeds

    img_n = image_tokens / image_tokens.norm(dim=-1, keepdim=True)
    text_embeds = []
    for i, p in enumerate(prompts):
        ids = torch.tensor([p["token_ids"]], dtype=torch.long)
        tout = model.text_model(input_ids=ids)
        text_tokens = model.text_projection(tout.last_hidden_state)[0]
        te = model.get_text_features(input_ids=ids).pooler_output[0]
        eos_pos = p["token_ids"].index(EOS)
        assert eos_pos == len(p["token_ids"]) - 1
        assert torch.allclose(te, text_tokens[eos_pos], atol=1e-6, rtol=0)
        txt_n = text_tokens / text_tokens.norm(dim=-1, keepdim=True)
        ref[f"text_tokens.{i}"] = text_tokens
        ref[f"text_embeds.{i}"] = te
        ref[f"dcsm.{i}"] = img_n @ txt_n.T
        text_embeds.append(te)
    text_embeds = torch.stack(text_embeds)

    cos = torch.nn.functional.cosine_similarity(image_embeds[None], text_embeds, dim=-1)
    ref["clip_cosine"] = cos

    max_len = model.config.text_config.max_position_embeddings
    batch = tok(
        [p["text"] for p in prompts],
        truncation=True,
        max_length=max_len,
        padding=True,
        return_tensors="pt",
    )
    for i, p in enumerate(prompts):
        n = len(p["token_ids"])
        assert batch["input_ids"][i, :n].tolist() == p["token_ids"]
        assert int(batch["attention_mask"][i].sum()) == n
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pv)
    logits = out.logits_per_image[0]
    scale = model.logit_scale.exp()
    assert torch.allclose(logits, scale * cos, atol=1e-4 * float(scale), rtol=0), (logits, scale * cos)
    batched_te = out.text_model_output.pooler_output
    assert torch.allclose(batched_te, text_embeds, atol=1e-5, rtol=0), (batched_te - text_embeds).abs().max()
    ref["logits_per_image"] = logits
    ref["clip_prob"] = torch.softmax(logits, dim=-1)
    ref["logit_scale"] = model.logit_scale.detach().clone().reshape(())

    return {k: v.detach().to(torch.float32).contiguous() for k, v in ref.items()}


def check_saved(model_dir: Path, spec: dict, tok, prompts, pixel_values, ref, weights) -> None:
    """Reload the saved model + processor and recompute everything."""
    s = spec["vision"]["image_size"]
    proc = PilCLIPImageProcessor.from_pretrained(model_dir)
    assert dict(proc.to_dict()["size"]).get("shortest_edge") == s, proc.size
    for stem, pv in pixel_values.items():
        again = proc(images=Image.open(IMAGES_DIR / f"{stem}.png").convert("RGB"), return_tensors="np")
        assert np.array_equal(again["pixel_values"][0], pv), stem

    loaded, info = CLIPModel.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(k), (k, info.get(k))
    loaded.eval()
    ref2 = compute_references(loaded, tok, prompts, pixel_values)
    stored = load_file(str(model_dir / "reference.safetensors"))
    assert set(stored) == set(ref) == set(ref2)
    # The saved weights must equal the weights the references were computed with
    # (for tiny_gelu: the float16-rounded values, exactly).
    for (k, a), (k2, b) in zip(sorted(weights.items()), sorted(loaded.state_dict().items())):
        assert k == k2 and torch.equal(a, b), k
    # Recomputed outputs: float32 within 1e-6 (relative to the tensor's magnitude,
    # logits are ~exp(logit_scale)); tiny BLAS rounding differences can come from
    # memory alignment alone.
    worst = 0.0
    for k in ref:
        assert stored[k].dtype == torch.float32 and torch.equal(stored[k], ref[k]), k
        d = float((ref2[k] - ref[k]).abs().max()) if ref[k].numel() else 0.0
        worst = max(worst, d)
        tol = 1e-6 * max(1.0, float(ref[k].abs().max()))
        assert d <= tol, (model_dir.name, k, d, tol)
    print(f"  reload check ok: max |diff| = {worst:g}" + (" (bit-exact)" if worst == 0 else ""))

    if spec["save_dtype"] == torch.float16:
        from safetensors import safe_open

        with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes == {"F16"}, dtypes


# --------------------------------------------------------------------------- main
def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    np.random.seed(0)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"tokenizer: {TOKENIZER_JSON}")

    image_paths = make_images()
    tok = make_tokenizer()

    for name, spec in MODELS.items():
        print(f"== {name}")
        model_dir = OUT_DIR / name
        model_dir.mkdir(parents=True, exist_ok=True)
        s = spec["vision"]["image_size"]
        max_len = spec["text"]["max_position_embeddings"]

        prompts = tokenize_prompts(tok, max_len)
        proc = make_processor(s)
        pixel_values, images_meta = {}, {}
        for img_name in (MAIN_IMAGE, "tall.png", spec["exact_image"]):
            pv, geo = preprocess(proc, image_paths[img_name], s)
            pixel_values[Path(img_name).stem] = pv
            images_meta[img_name] = geo
            d = torchvision_backend_diff(s, image_paths[img_name], pv)
            extra = "" if d is None else f"  (torchvision backend max |diff| {d:.4f})"
            print(f"  {img_name}: original {geo['original']} -> resized {geo['resized']}, crop {geo['crop']}{extra}")
        assert images_meta[spec["exact_image"]]["resized"] == [s, s]

        model = build_model(spec)
        ref = compute_references(model, tok, prompts, pixel_values)
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

        # save the model (float16 for tiny_gelu: rounded values are exactly representable)
        for stale in model_dir.glob("*"):
            if stale.is_file():
                stale.unlink()
        to_save = model.half() if spec["save_dtype"] == torch.float16 else model
        to_save.save_pretrained(model_dir, safe_serialization=True)
        model.float()
        proc.save_pretrained(model_dir)
        assert not (model_dir / "tokenizer.json").exists()
        save_file(ref, str(model_dir / "reference.safetensors"), metadata={"format": "pt"})

        meta = {
            "model": name,
            "prompts": prompts,
            "images": images_meta,
            "main_image": MAIN_IMAGE,
            "image_processor_backend": "pil",
            "resample": "bicubic",
            "logit_scale": float(ref["logit_scale"]),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }
        with open(model_dir / "reference.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
            f.write("\n")

        for i, p in enumerate(prompts):
            flag = " (truncated)" if p["truncated"] else ""
            print(f"  prompt {i}: {len(p['token_ids'])} tokens{flag}")
        print("  clip_prob:", [round(float(x), 4) for x in ref["clip_prob"]])
        check_saved(model_dir, spec, tok, prompts, pixel_values, ref, weights)

    print("== sizes")
    total = 0
    for sub in sorted(p for p in OUT_DIR.iterdir()):
        n = dir_size(sub) if sub.is_dir() else sub.stat().st_size
        total += n
        print(f"  {sub.relative_to(REPO_ROOT)}: {n / 1e6:.2f} MB")
    print(f"  total: {total / 1e6:.2f} MB")
    assert total < 8_500_000, total
    return 0


if __name__ == "__main__":
    sys.exit(main())
