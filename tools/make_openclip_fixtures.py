#!/usr/bin/env python3
"""Generate the OpenCLIP-layout fixtures for clipscope's Rust tests.

Writes ``tests/fixtures/openclip/`` (deterministic, byte-identical on re-runs):

    A/  GELU model (open_clip's default ``nn.GELU``, ``"quick_gelu": false``)
    B/  QuickGELU model (``"quick_gelu": true``, as OpenAI-derived checkpoints)
        open_clip_config.json        {"model_cfg": {...}, "preprocess_cfg": {...}}
                                     written by open_clip's own save_config_for_hf
        open_clip_model.safetensors  model.state_dict() as is (open_clip key names,
                                     float32), written as open_clip's save_for_hf does
        reference.safetensors        float32 reference tensors (names below)
        reference.json               model_cfg, versions, state-dict keys and shapes,
                                     prompts and token ids, preprocessing geometry,
                                     activation, pooling, padding, self-check numbers

The two folders are what the hub's LAION repositories ship for open_clip
(``hf-hub:laion/...``): ``open_clip_config.json`` + ``open_clip_model.safetensors``.

    A  embed 32; vision width 64, 2 layers, head_width 32 (2 heads), patch 8, image 32
       (4x4 grid); text width 64, 2 layers, 2 heads, context 16; OpenAI mean/std
    B  embed 24; vision width 48, 3 layers, head_width 16 (3 heads), mlp_ratio 4.3637
       (MLP width int(48 * 4.3637) = 209, as ViT-g-14 spells it), patch 16, image 64
       (4x4 grid); text width 32, 3 layers, 2 heads, context 20; mean/std 0.5.
       wide.png (97x61) resizes to 101x64, so the crop offset is 18.5 and
       torchvision's round-half-to-even gives 18 (half up would give 19).
    Both: vocab 49408 (real CLIP token ids), bicubic, resize_mode "shortest";
    the 4th prompt is longer than both contexts (truncation).

How the models are built (no download)
--------------------------------------
For each model the script writes ``open_clip_config.json`` and builds the model
with open_clip's factory, ``open_clip.create_model("local-dir:<folder>",
load_weights=False)`` (the ``local-dir:`` schema reads ``model_cfg`` and
``preprocess_cfg`` from that file; the model class is ``open_clip.CLIP``).  Every
tensor is then replaced by seeded random values (below), the config is rewritten
by ``open_clip.push_to_hf_hub.save_config_for_hf`` and the weights saved with
``safetensors.torch.save_file(model.state_dict(), "open_clip_model.safetensors")``,
which is exactly what ``open_clip.push_to_hf_hub.save_for_hf`` does (that helper
itself is not called because it also wants an ``HFTokenizer`` with
``save_pretrained``; CLIP's ``SimpleTokenizer`` has none, and LAION repos' tokenizer
files are Hugging Face's, not open_clip's).

The references are computed from a *fresh* model loaded by open_clip from the
written folder: ``open_clip.create_model_and_transforms("local-dir:<folder>")``
(strict state-dict load) gives the model and its inference transform,
``open_clip.get_tokenizer("local-dir:<folder>")`` the tokenizer.

Weights: every LayerNorm perturbed (w = 1 + 0.3 N, b = 0.2 N), every bias 0.1 N,
q/k rows of ``in_proj_weight`` x2 (sharper attention), class/positional
embeddings N(0, 1) / 0.5 N, patch conv x2.5 of unit-gain, ``logit_scale`` not
open_clip's init value.  The (49408, W) token table is periodic: rows repeat
with period 97 except the ids the prompts use (pad 0, SOT, EOT and every prompt
token), which have unique rows, so git's zlib packs it small.

reference.safetensors (float32; S image size, P patches, D embed_dim, T_i tokens)
    pixel_values     (1, 3, S, S)  open_clip's inference transform on
                                   tests/fixtures/parity/images/wide.png
    image_tokens     (1 + P, D)    every token of the visual transformer output
                                   -> ln_post -> @ visual.proj (row 0 = CLS)
    image_embeds     (D,)          encode_image(pixel_values) (unnormalised);
                                   equals image_tokens[0]
    input_ids        (K, C)        the padded tokenizer rows, as float
    text_tokens.<i>  (T_i, D)      ln_final output -> @ text_projection for the
                                   real tokens SOT..EOT of prompt i
    text_embeds.<i>  (D,)          encode_text (pooled at argmax(ids) = the EOT
                                   position); equals text_tokens.<i>[-1]
    logit_scale      ()            the raw parameter (not exp)
    clip_cosine      (K,)          cos(image_embeds, text_embeds.<i>)

Self-checks (max abs differences go to reference.json): the tokens captured at
ln_post / ln_final (forward hooks in open_clip's own encode_image / encode_text)
reproduce encode_image / encode_text at the CLS / EOT row; the visual tower's
``output_tokens=True`` patch tokens (ln_post'd, *unprojected*) @ proj equal
image_tokens[1:]; a manual PIL replay of the transform (resize, crop, RGB,
to-tensor, normalise) equals open_clip's pixel_values exactly; the reloaded
state dict is bit-identical to the one saved; and the weights renamed to Hugging
Face ``CLIPModel`` names (mapping in reference.json ``hf_mapping``) and loaded
into ``transformers.CLIPModel`` reproduce every reference tensor.

Run from the repository root:

    python tools/make_openclip_fixtures.py
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

import open_clip
from open_clip.push_to_hf_hub import save_config_for_hf
from open_clip.constants import (HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, INCEPTION_MEAN,
                                 INCEPTION_STD, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "openclip"
IMAGE = REPO_ROOT / "tests" / "fixtures" / "parity" / "images" / "wide.png"

TOKEN_PERIOD = 97
PROMPTS = [
    "a red circle above a blue square",
    "it\u2019s a cat &amp; a dog",
    "a dog",
    "a photograph of a small brown dog sitting on a wooden bench next to a tall red "
    "fire hydrant in the middle of a busy city street",
]

# model_cfg exactly as open_clip's model_configs/*.json spell it
MODELS = {
    "A": dict(
        seed=20250901,
        logit_scale=3.5,
        model_cfg={
            "embed_dim": 32,
            "quick_gelu": False,
            "vision_cfg": {
                "image_size": 32,
                "layers": 2,
                "width": 64,
                "head_width": 32,
                "patch_size": 8,
            },
            "text_cfg": {
                "context_length": 16,
                "vocab_size": 49408,
                "width": 64,
                "heads": 2,
                "layers": 2,
            },
        },
        preprocess_cfg={
            "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    ),
    "B": dict(
        seed=20250917,
        logit_scale=4.6052,
        model_cfg={
            "embed_dim": 24,
            "quick_gelu": True,
            "vision_cfg": {
                "image_size": 64,
                "layers": 3,
                "width": 48,
                "head_width": 16,
                "mlp_ratio": 4.3637,
                "patch_size": 16,
            },
            "text_cfg": {
                "context_length": 20,
                "vocab_size": 49408,
                "width": 32,
                "heads": 2,
                "layers": 3,
            },
        },
        preprocess_cfg={
            "mean": list(INCEPTION_MEAN),
            "std": list(INCEPTION_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    ),
}


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------
def _n(g: torch.Generator, *shape, std: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std


def random_state_dict(model: torch.nn.Module, seed: int, used_ids: list[int],
                      logit_scale: float) -> OrderedDict:
    """New values for every tensor of ``model.state_dict()`` (same keys, order, shapes)."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in model.state_dict().items():
        shape = tuple(v.shape)
        leaf = k.rsplit(".", 1)[-1]
        if ".ln_" in k or k.startswith("ln_") or k.startswith("visual.ln_"):
            t = 1.0 + _n(g, *shape, std=0.3) if leaf == "weight" else _n(g, *shape, std=0.2)
        elif leaf == "in_proj_weight":
            w = shape[1]
            t = _n(g, *shape, std=w ** -0.5)
            t[: 2 * w] *= 2.0
        elif leaf in ("in_proj_bias", "bias"):
            t = _n(g, *shape, std=0.1)
        elif k.endswith("out_proj.weight") or k.endswith("c_proj.weight"):
            t = _n(g, *shape, std=1.5 * shape[1] ** -0.5)
        elif k.endswith("c_fc.weight"):
            t = _n(g, *shape, std=shape[1] ** -0.5)
        elif k == "visual.conv1.weight":
            t = _n(g, *shape, std=2.5 * (shape[1] * shape[2] * shape[3]) ** -0.5)
        elif k == "visual.class_embedding":
            t = _n(g, *shape, std=1.0)
        elif k in ("visual.positional_embedding", "positional_embedding"):
            t = _n(g, *shape, std=0.5)
        elif k in ("visual.proj", "text_projection"):
            t = _n(g, *shape, std=shape[0] ** -0.5)
        elif k == "token_embedding.weight":
            vocab, width = shape
            base = _n(g, TOKEN_PERIOD, width, std=1.0)
            t = base.repeat(math.ceil(vocab / TOKEN_PERIOD), 1)[:vocab].clone()
            for i in sorted(set(used_ids)):
                t[i] = _n(g, width, std=1.0)
        elif k == "logit_scale":
            t = torch.tensor(logit_scale, dtype=torch.float32).reshape(shape)
        else:
            raise RuntimeError(f"no randomisation rule for state-dict key {k} {shape}")
        assert tuple(t.shape) == shape, (k, t.shape, shape)
        out[k] = t.contiguous()
    return out


# --------------------------------------------------------------------------
# Preprocessing replay (what open_clip's inference transform does, step by step)
# --------------------------------------------------------------------------
def transform_geometry(w: int, h: int, size: int) -> dict:
    """torchvision Resize(size) (shortest edge) + CenterCrop(size) geometry."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)  # truncation, as torchvision
    rw, rh = (new_short, new_long) if w <= h else (new_long, new_short)
    top_exact, left_exact = (rh - size) / 2.0, (rw - size) / 2.0
    top, left = int(round(top_exact)), int(round(left_exact))  # Python round: half to even
    return dict(original=[w, h], resized=[rw, rh],
                crop=dict(left=left, top=top, width=size, height=size),
                crop_offset_exact=dict(left=left_exact, top=top_exact))


def replay_transform(img: Image.Image, size: int, mean, std) -> tuple[torch.Tensor, dict]:
    geo = transform_geometry(img.width, img.height, size)
    rw, rh = geo["resized"]
    c = geo["crop"]
    x = img.resize((rw, rh), Image.BICUBIC)
    x = x.crop((c["left"], c["top"], c["left"] + size, c["top"] + size))
    x = x.convert("RGB")
    a = torch.from_numpy(np.asarray(x, dtype=np.uint8).copy()).permute(2, 0, 1)
    a = a.to(torch.float32).div(255)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return ((a - m) / s).unsqueeze(0), geo


# --------------------------------------------------------------------------
# Hugging Face CLIPModel names (independent check of the mapping)
# --------------------------------------------------------------------------
BLOCK_MAP = [
    ("ln_1.weight", "layer_norm1.weight"), ("ln_1.bias", "layer_norm1.bias"),
    ("ln_2.weight", "layer_norm2.weight"), ("ln_2.bias", "layer_norm2.bias"),
    ("attn.out_proj.weight", "self_attn.out_proj.weight"),
    ("attn.out_proj.bias", "self_attn.out_proj.bias"),
    ("mlp.c_fc.weight", "mlp.fc1.weight"), ("mlp.c_fc.bias", "mlp.fc1.bias"),
    ("mlp.c_proj.weight", "mlp.fc2.weight"), ("mlp.c_proj.bias", "mlp.fc2.bias"),
]
TOP_MAP = {
    "visual.class_embedding": ("vision_model.embeddings.class_embedding", "copy"),
    "visual.positional_embedding": ("vision_model.embeddings.position_embedding.weight", "copy"),
    "visual.conv1.weight": ("vision_model.embeddings.patch_embedding.weight", "copy"),
    "visual.ln_pre.weight": ("vision_model.pre_layrnorm.weight", "copy"),
    "visual.ln_pre.bias": ("vision_model.pre_layrnorm.bias", "copy"),
    "visual.ln_post.weight": ("vision_model.post_layernorm.weight", "copy"),
    "visual.ln_post.bias": ("vision_model.post_layernorm.bias", "copy"),
    "visual.proj": ("visual_projection.weight", "transpose"),
    "token_embedding.weight": ("text_model.embeddings.token_embedding.weight", "copy"),
    "positional_embedding": ("text_model.embeddings.position_embedding.weight", "copy"),
    "ln_final.weight": ("text_model.final_layer_norm.weight", "copy"),
    "ln_final.bias": ("text_model.final_layer_norm.bias", "copy"),
    "text_projection": ("text_projection.weight", "transpose"),
    "logit_scale": ("logit_scale", "copy"),
}


def to_hf(sd: dict) -> tuple[dict, dict]:
    """open_clip state dict -> HF CLIPModel state dict, plus the name mapping used."""
    hf, mapping = {}, {}
    for k, v in sd.items():
        if k in TOP_MAP:
            name, how = TOP_MAP[k]
            hf[name] = v.t().contiguous() if how == "transpose" else v
            mapping[k] = {"hf": name, "how": how}
            continue
        if k.startswith("visual.transformer.resblocks."):
            rest, tower = k[len("visual.transformer.resblocks."):], "vision_model"
        elif k.startswith("transformer.resblocks."):
            rest, tower = k[len("transformer.resblocks."):], "text_model"
        else:
            raise RuntimeError(f"unmapped key {k}")
        layer, leaf = rest.split(".", 1)
        p = f"{tower}.encoder.layers.{layer}."
        if leaf in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = leaf.rsplit("_", 1)[-1]
            w = v.shape[0] // 3
            names = []
            for j, qkv in enumerate(("q_proj", "k_proj", "v_proj")):
                hf[f"{p}self_attn.{qkv}.{kind}"] = v[j * w:(j + 1) * w].contiguous()
                names.append(f"{p}self_attn.{qkv}.{kind}")
            mapping[k] = {"hf": names, "how": "split rows [0:W) q, [W:2W) k, [2W:3W) v"}
            continue
        for a, b in BLOCK_MAP:
            if leaf == a:
                hf[p + b] = v
                mapping[k] = {"hf": p + b, "how": "copy"}
                break
        else:
            raise RuntimeError(f"unmapped block key {k}")
    return hf, mapping


@torch.no_grad()
def hf_check(model_cfg: dict, sd: dict, ref: dict, ids: torch.Tensor, lengths: list[int]) -> dict:
    import transformers
    from transformers import CLIPConfig, CLIPModel

    logging.getLogger("transformers").setLevel(logging.ERROR)
    v, t = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    v_mlp = int(v["width"] * v.get("mlp_ratio", 4.0))
    t_mlp = int(t["width"] * t.get("mlp_ratio", 4.0))
    act = "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"
    cfg = CLIPConfig(
        projection_dim=model_cfg["embed_dim"],
        logit_scale_init_value=2.6592,
        text_config=dict(vocab_size=t["vocab_size"], hidden_size=t["width"],
                         intermediate_size=t_mlp, num_hidden_layers=t["layers"],
                         num_attention_heads=t["heads"], max_position_embeddings=t["context_length"],
                         hidden_act=act, layer_norm_eps=1e-5, projection_dim=model_cfg["embed_dim"],
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=0),
        vision_config=dict(hidden_size=v["width"], intermediate_size=v_mlp,
                           num_hidden_layers=v["layers"],
                           num_attention_heads=v["width"] // v["head_width"],
                           image_size=v["image_size"], patch_size=v["patch_size"],
                           hidden_act=act, layer_norm_eps=1e-5,
                           projection_dim=model_cfg["embed_dim"]),
    )
    cfg._attn_implementation = "eager"
    hf = CLIPModel(cfg).eval()
    hf_sd, mapping = to_hf(sd)
    res = hf.load_state_dict(hf_sd, strict=False)
    missing = [k for k in res.missing_keys if not k.endswith("position_ids")]
    assert not missing and not res.unexpected_keys, (missing, res.unexpected_keys)
    vo = hf.vision_model(pixel_values=ref["pixel_values"])
    img_tok = hf.visual_projection(hf.vision_model.post_layernorm(vo.last_hidden_state))[0]
    to = hf.text_model(input_ids=ids)
    txt = hf.text_projection(to.last_hidden_state)
    diffs = {"image_tokens": (img_tok - ref["image_tokens"]).abs().max().item()}
    d_tok, d_emb = 0.0, 0.0
    for i, n in enumerate(lengths):
        d_tok = max(d_tok, (txt[i, :n] - ref[f"text_tokens.{i}"]).abs().max().item())
        d_emb = max(d_emb, (hf.text_projection(to.pooler_output[i]) - ref[f"text_embeds.{i}"])
                    .abs().max().item())
    diffs["text_tokens"] = d_tok
    diffs["text_embeds"] = d_emb
    diffs["image_embeds"] = (hf.visual_projection(vo.pooler_output[0]) - ref["image_embeds"]).abs().max().item()
    tol = 1e-4
    for k, d in diffs.items():
        assert d < tol, f"HF CLIPModel mismatch on {k}: {d}"
    return {"transformers_version": transformers.__version__,
            "attn_implementation": "eager",
            "max_abs_diff": {k: float(f"{d:.3g}") for k, d in diffs.items()},
            "hidden_act": act}, mapping


# --------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------
def versions() -> dict:
    import ftfy
    import PIL
    import safetensors
    import torchvision
    return {"open_clip": open_clip.__version__, "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0], "pillow": PIL.__version__,
            "numpy": np.__version__, "safetensors": safetensors.__version__, "ftfy": ftfy.__version__,
            "python": ".".join(map(str, sys.version_info[:3]))}


def used_token_ids(tokenizer) -> list[int]:
    ids = tokenizer(PROMPTS)
    return sorted(set(ids.flatten().tolist()) | {0, tokenizer.sot_token_id, tokenizer.eot_token_id})


@torch.no_grad()
def build(name: str, spec: dict) -> None:
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob("*"):
        stale.unlink()
    model_cfg, preprocess_cfg = spec["model_cfg"], spec["preprocess_cfg"]
    cfg_path = d / HF_CONFIG_NAME
    with cfg_path.open("w") as f:  # provisional, rewritten by open_clip's save_config_for_hf below
        json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, f, indent=2)

    # 1. build with open_clip's factory from the folder, randomise, save in the hub layout
    torch.manual_seed(spec["seed"])
    model = open_clip.create_model(f"local-dir:{d}", load_weights=False).eval()
    assert type(model) is open_clip.CLIP, type(model)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{d}")
    sd = random_state_dict(model, spec["seed"] + 1, used_token_ids(tokenizer), spec["logit_scale"])
    model.load_state_dict(sd, strict=True)
    save_config_for_hf(model, cfg_path, model_config=copy.deepcopy(model_cfg))
    with cfg_path.open("a") as f:
        f.write("\n")
    save_file(model.state_dict(), str(d / HF_SAFE_WEIGHTS_NAME))  # == save_for_hf's weights
    written_cfg = json.loads(cfg_path.read_text())
    assert written_cfg["model_cfg"] == model_cfg, written_cfg
    assert written_cfg["preprocess_cfg"] == preprocess_cfg, written_cfg
    del model

    # 2. reload the folder with open_clip (strict), its transform and tokenizer
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{d}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{d}")
    loaded = model.state_dict()
    assert list(loaded) == list(sd)
    for k in sd:
        assert torch.equal(loaded[k], sd[k]), k
    v_cfg, t_cfg = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    size = v_cfg["image_size"]
    ctx = t_cfg["context_length"]
    assert model.visual.transformer.resblocks[0].attn.num_heads == v_cfg["width"] // v_cfg["head_width"]
    assert model.transformer.resblocks[0].attn.num_heads == t_cfg["heads"]
    act_cls = type(model.visual.transformer.resblocks[0].mlp.gelu)
    assert act_cls is (open_clip.transformer.QuickGELU if model_cfg["quick_gelu"] else torch.nn.GELU)
    assert type(model.transformer.resblocks[0].mlp.gelu) is act_cls
    assert model.text_pool_type == "argmax" and model.visual.pool_type == "tok"
    assert model.visual.attn_pool is None and not model.visual.final_ln_after_pool
    assert not isinstance(model.visual.ln_pre, torch.nn.Identity)
    assert isinstance(model.visual.patch_dropout, torch.nn.Identity)
    assert tokenizer.context_length == ctx

    img = Image.open(IMAGE)
    img.load()
    pixel_values = preprocess(img).unsqueeze(0).contiguous()
    replay, geo = replay_transform(img, size, preprocess_cfg["mean"], preprocess_cfg["std"])
    assert torch.equal(replay, pixel_values), (replay - pixel_values).abs().max()

    # image: capture ln_post's output inside open_clip's own encode_image
    cap = {}
    h = model.visual.ln_post.register_forward_hook(lambda m, i, o: cap.__setitem__("ln_post", o))
    image_embeds = model.encode_image(pixel_values)[0]
    h.remove()
    image_tokens = (cap["ln_post"] @ model.visual.proj)[0].contiguous()
    d_cls = (image_tokens[0] - image_embeds).abs().max().item()
    assert d_cls < 1e-6, d_cls
    model.visual.output_tokens = True
    pooled, patch_tok = model.visual(pixel_values)
    model.visual.output_tokens = False
    assert patch_tok.shape[-1] == v_cfg["width"]  # ln_post'd but not projected
    d_patch = ((patch_tok @ model.visual.proj)[0] - image_tokens[1:]).abs().max().item()
    assert d_patch < 1e-6, d_patch

    # text: capture ln_final's output inside open_clip's own encode_text
    ids = tokenizer(PROMPTS)
    assert ids.shape == (len(PROMPTS), ctx)
    h = model.ln_final.register_forward_hook(lambda m, i, o: cap.__setitem__("ln_final", o))
    text_embeds = model.encode_text(ids)
    h.remove()
    text_all = cap["ln_final"] @ model.text_projection
    eot = tokenizer.eot_token_id
    ref = OrderedDict()
    ref["pixel_values"] = pixel_values
    ref["image_tokens"] = image_tokens
    ref["image_embeds"] = image_embeds.contiguous()
    ref["input_ids"] = ids.to(torch.float32)
    prompts, lengths, d_eot, d_single = [], [], 0.0, 0.0
    for i, text in enumerate(PROMPTS):
        row = ids[i].tolist()
        pool_at = int(ids[i].argmax())
        n = pool_at + 1
        assert row[pool_at] == eot and row.index(eot) == pool_at
        assert all(x == 0 for x in row[n:])
        full = [tokenizer.sot_token_id] + tokenizer.encode(text) + [eot]
        truncated = len(full) > ctx
        lengths.append(n)
        ref[f"text_tokens.{i}"] = text_all[i, :n].contiguous()
        ref[f"text_embeds.{i}"] = text_embeds[i].contiguous()
        d_eot = max(d_eot, (text_all[i, pool_at] - text_embeds[i]).abs().max().item())
        # the real tokens do not depend on the padding after EOT (causal mask)
        alone = model.encode_text(ids[i:i + 1])[0]
        d_single = max(d_single, (alone - text_embeds[i]).abs().max().item())
        prompts.append(dict(
            text=text,
            cleaned=open_clip.tokenizer._clean_lower(text),
            token_ids=row[:n],
            tokens=[tokenizer.decoder[x] for x in row[:n]],
            padded_ids=row,
            length=n,
            pool_index=pool_at,
            truncated=truncated,
            untruncated_length=len(full),
        ))
    assert d_eot < 1e-6 and d_single < 1e-5, (d_eot, d_single)
    ref["logit_scale"] = model.logit_scale.detach().clone().reshape(())
    ref["clip_cosine"] = torch.stack([F.cosine_similarity(image_embeds, text_embeds[i], dim=0)
                                      for i in range(len(PROMPTS))]).contiguous()
    ref = OrderedDict((k, v.detach().to(torch.float32).contiguous()) for k, v in ref.items())
    save_file(ref, str(d / "reference.safetensors"))

    hf, mapping = hf_check(model_cfg, sd, ref, ids, lengths)

    # how far the references move if the activation were the other one (a port that
    # ignores quick_gelu must fail clearly)
    other = copy.deepcopy(model)
    for blk in list(other.visual.transformer.resblocks) + list(other.transformer.resblocks):
        blk.mlp.gelu = torch.nn.GELU() if model_cfg["quick_gelu"] else open_clip.transformer.QuickGELU()
    swap = dict(image_embeds=(other.encode_image(pixel_values)[0] - image_embeds).abs().max().item(),
                text_embeds=(other.encode_text(ids) - text_embeds).abs().max().item())
    del other
    # and if the crop offset were rounded half up / floored instead of half to even
    crop_alt = {}
    for rule, fn in (("half_up", lambda x: int(math.floor(x + 0.5))), ("floor", math.floor)):
        c = geo["crop_offset_exact"]
        left, top = fn(c["left"]), fn(c["top"])
        if (left, top) != (geo["crop"]["left"], geo["crop"]["top"]):
            crop_alt[rule] = dict(left=left, top=top)

    # state-dict listing (file order = state_dict order)
    keys = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in sd.items()]
    grid = size // v_cfg["patch_size"]
    info = OrderedDict(
        model=name,
        folder_layout={"config": HF_CONFIG_NAME, "weights": HF_SAFE_WEIGHTS_NAME},
        model_cfg=model_cfg,
        preprocess_cfg=written_cfg["preprocess_cfg"],
        open_clip_version=open_clip.__version__,
        torch_version=torch.__version__.split("+")[0],
        versions=versions(),
        loaded_with=f'open_clip.create_model_and_transforms("local-dir:tests/fixtures/openclip/{name}") '
                    "(strict load of open_clip_model.safetensors)",
        model_class="open_clip.CLIP",
        seed=spec["seed"],
        dims=dict(
            embed_dim=model_cfg["embed_dim"],
            vision_width=v_cfg["width"], vision_layers=v_cfg["layers"],
            vision_heads=v_cfg["width"] // v_cfg["head_width"],
            vision_heads_rule="heads = width // head_width (head_width defaults to 64)",
            patch_size=v_cfg["patch_size"], image_size=size, grid=[grid, grid],
            num_patches=grid * grid, image_tokens=1 + grid * grid,
            text_width=t_cfg["width"], text_layers=t_cfg["layers"], text_heads=t_cfg["heads"],
            context_length=ctx, vocab_size=t_cfg["vocab_size"],
            vision_mlp_ratio=v_cfg.get("mlp_ratio", 4.0),
            vision_mlp_width=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            text_mlp_ratio=t_cfg.get("mlp_ratio", 4.0),
            text_mlp_width=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            mlp_width_rule="int(width * mlp_ratio) (truncated; mlp_ratio defaults to 4.0)",
            layer_norm_eps=1e-5,
        ),
        activation=("QuickGELU: x * sigmoid(1.702 x) (open_clip.transformer.QuickGELU)"
                    if model_cfg["quick_gelu"] else
                    "GELU, exact erf form (torch.nn.GELU(approximate='none'))"),
        vision=dict(
            pool_type="tok (CLS row 0)", attentional_pool=False, final_ln_after_pool=False,
            no_ln_pre=False, patch_dropout=0.0, conv1_bias=False,
            order="conv1 -> flatten -> [class_embedding; patches] + positional_embedding -> "
                  "ln_pre -> resblocks -> ln_post (all tokens) -> pool CLS -> @ proj",
        ),
        text=dict(
            pool_type="argmax",
            pooling_rule="x[arange(B), ids.argmax(-1)]: the EOT position (EOT 49407 is the largest id, "
                         "so argmax is the first EOT); ln_final is applied to every position before pooling",
            attn_mask="causal only (additive -inf above the diagonal, built for context_length); "
                      "no padding mask (use_pad_mask needs no_causal_mask); not in the state dict "
                      "(non-persistent buffer)",
            sot_id=tokenizer.sot_token_id, eot_id=eot,
            pad_id=0,
            padding="SimpleTokenizer: [SOT] + bpe(text) + [EOT], zero-filled to context_length "
                    "(pad id 0 = '!'); text_cfg.pad_id (0) is only used by use_pad_mask models",
            truncation="if longer than context_length: keep the first context_length ids, "
                       "then overwrite the last one with EOT",
            cleaning="'lower': ftfy.fix_text, html.unescape twice, strip, collapse whitespace, lower-case",
            order="token_embedding + positional_embedding -> resblocks (causal mask) -> ln_final "
                  "-> pool -> @ text_projection",
        ),
        preprocessing=dict(
            transform=repr(preprocess).splitlines(),
            steps=[
                "torchvision Resize(image_size, bicubic) on the PIL image: shortest edge -> image_size, "
                "long edge int(image_size * long / short) (truncated), PIL Image.resize(BICUBIC) "
                "in the image's own mode",
                "torchvision CenterCrop(image_size): top = int(round((h - S) / 2)), "
                "left = int(round((w - S) / 2)), Python round = half to even",
                "convert('RGB') AFTER resize and crop (MaybeConvertMode)",
                "ToTensor: uint8 / 255 in float32, HWC -> CHW",
                "Normalize: (x - mean) / std per channel, float32",
            ],
            image="tests/fixtures/parity/images/wide.png",
            image_mode=img.mode,
            geometry=geo,
            replay_equal=True,
        ),
        prompts=prompts,
        logit_scale=float(ref["logit_scale"].item()),
        state_dict=keys,
        hf_mapping=mapping,
        tensors={k: list(v.shape) for k, v in ref.items()},
        self_checks=dict(
            cls_row_vs_encode_image=float(f"{d_cls:.3g}"),
            output_tokens_at_proj_vs_image_tokens=float(f"{d_patch:.3g}"),
            eot_row_vs_encode_text=float(f"{d_eot:.3g}"),
            single_prompt_vs_batch=float(f"{d_single:.3g}"),
            reload_bit_identical=True,
            other_activation_max_abs_change={k: float(f"{d:.3g}") for k, d in swap.items()},
            crop_rules_that_differ=crop_alt,
            hf_clipmodel=hf,
        ),
    )
    (d / "reference.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {sum(v.numel() for v in sd.values())} params, "
          f"crop {geo['crop']}, cosines {[round(x, 4) for x in ref['clip_cosine'].tolist()]}, "
          f"hf {hf['max_abs_diff']}")


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name, spec in MODELS.items():
        build(name, spec)


if __name__ == "__main__":
    sys.exit(main())
