#!/usr/bin/env python3
"""Convert a released SmartCLIP checkpoint (.pt) into a Hugging Face CLIP folder.

Input
-----
The file the reference code writes and loads: ``train/train.py`` ``save``
does ``torch.save(self.model.module.state_dict(), ...)`` and
``model/longclip.py`` ``load`` passes the unpickled object straight to
``build_model``, which indexes it by key, so the release is a *flat* state dict
(an OrderedDict of tensors, no wrapper, no ``module.`` prefix) with OpenAI key
names:

    visual.*  (class_embedding, positional_embedding, conv1.weight, ln_pre, ln_post,
               proj (Wv, E), transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj,
               ln_2, mlp.c_fc, mlp.c_proj})
    transformer.resblocks.N.*   text blocks (causal), same names
    token_embedding.weight (V, Wt), positional_embedding (248, Wt),
    positional_embedding_res (248, Wt), ln_final.{weight,bias}, text_projection (Wt, E),
    logit_scale ()
    mask_net.resblocks.0.{ln_1, attn.in_proj_weight (3Wt, Wt), attn.in_proj_bias,
               attn.out_proj, ln_2, mlp.c_fc (4Wt, Wt), mlp.c_proj (Wt, 4Wt)}.{weight,bias}
    mask_net.attn_pool.attention.weight (1, Wt), mask_net.attn_pool.attention.bias (1,)

Wrapped files are accepted too (a dict whose ``state_dict`` / ``model`` /
``module`` entry is the state dict; a ``module.`` prefix is stripped).  The file
is read with ``torch.load(..., weights_only=True)``; a plain state dict always
allows that.  If it does not, the tool stops and says so, unless
``--allow-pickle`` is given (then ``weights_only=False``: only for files you
trust, it can run code).

Output folder
-------------
    config.json        transformers CLIPConfig (vision/text sizes from the shapes,
                       text max_position_embeddings 248, hidden_act quick_gelu,
                       layer_norm_eps 1e-5, projection_dim, eos 49407, pad 0) plus
                       "smartclip": {"mask_width", "mask_heads", "mask_layers",
                       "text_pad_id": 0, "long_clip_split": 20, "score_scale": 100,
                       "mask_threshold": 0.5, "tokenizer": note}
    model.safetensors  transformers CLIPModel names; text position table = rows 0..19 of
                       positional_embedding + rows 20..247 of positional_embedding_res;
                       packed in_proj split into q/k/v; visual.proj and text_projection
                       transposed to Linear layout; plus the mask network under
                       ``mask_net.<original name>`` (unchanged layout, packed in_proj kept).
                       dtype: the checkpoint's (``--dtype f16|f32`` to force).

fp16 rounding (default; ``--full-precision`` to skip)
-----------------------------------------------------
The official loader does not use the checkpoint's values as they are:
``model_longclip.build_model`` calls ``convert_weights(model)`` *before*
``model.load_state_dict(state_dict, strict=False)``.  ``convert_weights`` turns
into float16 the weight and bias of every ``nn.Conv1d`` / ``nn.Conv2d`` /
``nn.Linear`` (so also every attention ``out_proj``, ``mlp.c_fc``, ``mlp.c_proj``
and the mask network's ``attn_pool.attention``), the ``in_proj_weight`` /
``in_proj_bias`` (``q/k/v_proj_weight``, ``bias_k``, ``bias_v`` when present) of
every ``nn.MultiheadAttention``, and the ``proj`` (``visual.proj``) and
``text_projection`` parameters.  ``load_state_dict`` then copies the float32
checkpoint *into* those float16 parameters (round to nearest even), and on CPU
``longclip.load`` casts the model back with ``model.float()``.  LayerNorms,
the token embedding, class / positional embeddings (both tables) and
``logit_scale`` stay float32.  So the released model is, in effect, the
checkpoint with those tensors rounded to fp16.  The converter reproduces that:
it selects the same tensors by their OpenAI key names
(``fp16_rounded_keys``), rounds them to float16 and back to the output dtype,
prints how many it rounded, and records ``"weights_rounding": "fp16"`` in the
"smartclip" section of config.json (``"none"`` with ``--full-precision``).  A
float16 checkpoint is unchanged by the rounding (the record still says fp16).
config.json also gets the top-level key ``"pipeline": {"image": "openai",
"text": "openai"}``: torchvision-style preprocessing (Pillow bicubic resize of
the image as opened, round-half-even centre crop, RGB conversion after) and the
OpenAI tokenizer's text clean-up (ftfy, HTML unescape twice, whitespace, lower
case).  Hugging Face folders without that key keep transformers' conventions.

Verification (default; ``--no-verify`` to skip): the folder is loaded with
``transformers.CLIPModel`` (float32, eager attention) and compared with our
OpenAI-layout reference (``smartclip_reference.SmartCLIP``) built from the
state dict the folder was made from (i.e. after the same fp16 rounding, unless
``--full-precision``): image embeds, text embeds, text last_hidden_state (all
248 positions, no attention mask) and mask logits from the converted
``mask_net.*``.

Usage (repository root):

    python tools/convert_smartclip_checkpoint.py smartclip_b16.pt OUT_DIR [--full-precision]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smartclip_reference import (  # noqa: E402
    EOT_ID,
    LN_EPS,
    LONG_CLIP_SPLIT,
    MASK_THRESHOLD,
    PAD_ID,
    SCORE_SCALE,
    SOT_ID,
    MaskNet,
    SmartCLIP,
)

TOKENIZER_NOTE = (
    "OpenAI CLIP BPE (Long-CLIP tokenize): <|startoftext|> 49406, tokens, <|endoftext|> 49407, "
    "then pad with 0 up to 248 (truncate=True keeps the first 248 ids and sets the last to EOT). Pooling at argmax(ids) == first EOT. "
    "The mask network reads ln_final outputs of all 248 positions, padding included."
)
SKIP_KEYS = {"input_resolution", "context_length", "vocab_size"}
# config.json top-level key: torchvision-style image preprocessing, OpenAI tokenizer clean-up
PIPELINE = {"image": "openai", "text": "openai"}
ROUNDING_CHOICES = ("fp16", "none")


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) for k in obj) and any(torch.is_tensor(v) for v in obj.values())


def load_checkpoint(path: str | Path, allow_pickle: bool = False) -> tuple[OrderedDict, dict]:
    """Return (flat state dict, info) where info records how the file was read."""
    info = {"path": str(path)}
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        info["weights_only"] = True
    except Exception as err:  # noqa: BLE001 - report any unpickling refusal
        if not allow_pickle:
            raise SystemExit(
                f"{path}: torch.load(weights_only=True) refused the file ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}).\nRe-run with --allow-pickle "
                "only if you trust the file (weights_only=False can run code).") from err
        print(f"warning: weights_only=True failed ({type(err).__name__}); loading with "
              "weights_only=False because --allow-pickle was given", file=sys.stderr)
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
        info["weights_only"] = False
    container = "state_dict"
    if not _is_state_dict(obj) or "visual.conv1.weight" not in obj:
        for key in ("state_dict", "model", "module", "model_state_dict"):
            if isinstance(obj, dict) and _is_state_dict(obj.get(key)):
                obj = obj[key]
                container = f"dict[{key!r}]"
                break
        else:
            raise SystemExit(f"{path}: no CLIP state dict found (top-level type {type(obj).__name__})")
    sd = OrderedDict()
    for k, v in obj.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k in SKIP_KEYS or not torch.is_tensor(v):
            continue
        sd[k] = v
    info["container"] = container
    info["dtypes"] = sorted({str(v.dtype).replace("torch.", "") for v in sd.values()})
    info["num_tensors"] = len(sd)
    return sd, info


# --------------------------------------------------------------------------
# fp16 rounding of the official loader (convert_weights), by key name
# --------------------------------------------------------------------------
# Parents (module paths) whose ``weight`` / ``bias`` belong to an nn.Linear / nn.Conv*
# in the OpenAI / Long-CLIP / SmartCLIP module tree.  ViT: visual.conv1, attn.out_proj,
# mlp.c_fc, mlp.c_proj, mask_net.attn_pool.attention; ModifiedResNet (not converted
# by this tool, listed so the rule is complete): stem conv1-3, bottleneck conv1-3,
# downsample.0, attnpool.{q,k,v,c}_proj.
_LINEAR_CONV_PARENT = re.compile(
    r"(^|\.)(conv[123]|downsample\.0|attn\.out_proj|mlp\.c_fc|mlp\.c_proj|attn_pool\.attention"
    r"|attnpool\.[qkvc]_proj)$")
# nn.MultiheadAttention's own parameters (the block's ``attn`` module)
_MHA_PARAMS = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight",
               "v_proj_weight", "bias_k", "bias_v")
# parameters named ``proj`` / ``text_projection`` on any module
_PROJ_PARAMS = ("proj", "text_projection")


def is_fp16_rounded_key(key: str) -> bool:
    """True if the official loader's ``convert_weights`` makes this checkpoint key
    (OpenAI names) float16 before ``load_state_dict`` copies the value in."""
    parent, _, leaf = key.rpartition(".")
    if leaf in ("weight", "bias") and _LINEAR_CONV_PARENT.search(parent):
        return True
    if leaf in _MHA_PARAMS and (parent == "attn" or parent.endswith(".attn")):
        return True
    return leaf in _PROJ_PARAMS


def fp16_rounded_keys(sd: dict) -> list[str]:
    return [k for k, v in sd.items() if v.is_floating_point() and is_fp16_rounded_key(k)]


def round_like_official_loader(sd: dict) -> tuple[OrderedDict, list[str], int]:
    """Copy of ``sd`` with the ``convert_weights`` tensors rounded to float16 and cast
    back to their own dtype.  Returns (state dict, rounded keys, number of changed values)."""
    keys = fp16_rounded_keys(sd)
    out = OrderedDict(sd)
    changed = 0
    for k in keys:
        v = sd[k]
        r = v.to(torch.float16).to(v.dtype)
        if v.dtype not in (torch.float16, torch.float32, torch.float64):
            # e.g. bfloat16: fp16 values are not all representable; the result is re-rounded
            print(f"warning: {k} is {v.dtype}; fp16 rounding cast back to {v.dtype} is inexact",
                  file=sys.stderr)
        changed += int((r != v).sum())
        out[k] = r
    return out, keys, changed


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------
def _count(sd: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})


def _block(out: dict, src: str, dst: str, sd: dict) -> None:
    """One OpenAI ResidualAttentionBlock -> HF CLIPEncoderLayer."""
    w = sd[src + "attn.in_proj_weight"]
    b = sd[src + "attn.in_proj_bias"]
    width = w.shape[1]
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        out[f"{dst}self_attn.{name}.weight"] = w[i * width:(i + 1) * width]
        out[f"{dst}self_attn.{name}.bias"] = b[i * width:(i + 1) * width]
    pairs = {
        "attn.out_proj": "self_attn.out_proj",
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    for s, d in pairs.items():
        out[f"{dst}{d}.weight"] = sd[f"{src}{s}.weight"]
        out[f"{dst}{d}.bias"] = sd[f"{src}{s}.bias"]


def hf_config(sd: dict, dtype: torch.dtype, rounding: str = "fp16") -> dict:
    """The CLIPConfig dict (plus our "smartclip" and "pipeline" objects)."""
    from transformers import CLIPConfig

    conv = sd["visual.conv1.weight"]
    v_width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = round(math.sqrt(sd["visual.positional_embedding"].shape[0] - 1))
    t_width = int(sd["ln_final.weight"].shape[0])
    embed = int(sd["text_projection"].shape[1])
    context = int(sd["positional_embedding"].shape[0])
    mask_width = int(sd["mask_net.attn_pool.attention.weight"].shape[1])
    if mask_width != embed:
        raise SystemExit(f"mask width {mask_width} != embedding dim {embed}: the mask cannot "
                         "multiply the image embedding")
    text = dict(
        vocab_size=int(sd["token_embedding.weight"].shape[0]),
        hidden_size=t_width,
        intermediate_size=int(sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        num_hidden_layers=_count(sd, "transformer.resblocks."),
        num_attention_heads=t_width // 64,
        max_position_embeddings=context,
        hidden_act="quick_gelu",
        layer_norm_eps=LN_EPS,
        projection_dim=embed,
        bos_token_id=SOT_ID,
        eos_token_id=EOT_ID,
        pad_token_id=PAD_ID,
    )
    vision = dict(
        hidden_size=v_width,
        intermediate_size=int(sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        num_hidden_layers=_count(sd, "visual.transformer.resblocks."),
        num_attention_heads=v_width // 64,
        image_size=patch * grid,
        patch_size=patch,
        num_channels=3,
        hidden_act="quick_gelu",
        layer_norm_eps=LN_EPS,
        projection_dim=embed,
    )
    logit_scale = float(sd["logit_scale"].float()) if "logit_scale" in sd else math.log(100.0)
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=embed,
                     logit_scale_init_value=logit_scale)
    cfg.architectures = ["CLIPModel"]
    cfg.dtype = str(dtype).replace("torch.", "")
    d = json.loads(cfg.to_json_string(use_diff=False))
    d["smartclip"] = {
        "mask_width": mask_width,
        "mask_heads": t_width // 64,
        "mask_layers": _count(sd, "mask_net.resblocks."),
        "text_pad_id": PAD_ID,
        "long_clip_split": LONG_CLIP_SPLIT if "positional_embedding_res" in sd else 0,
        "score_scale": SCORE_SCALE,
        "mask_threshold": MASK_THRESHOLD,
        "tokenizer": TOKENIZER_NOTE,
        "weights_rounding": rounding,
    }
    d["pipeline"] = dict(PIPELINE)
    return d


def convert_state_dict(sd: dict, dtype: torch.dtype | None = None) -> OrderedDict:
    """OpenAI-layout SmartCLIP state dict -> HF CLIPModel names + ``mask_net.*``."""
    out: OrderedDict = OrderedDict()
    # vision
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    out["vision_model.pre_layrnorm.weight"] = sd["visual.ln_pre.weight"]  # sic, HF's name
    out["vision_model.pre_layrnorm.bias"] = sd["visual.ln_pre.bias"]
    for i in range(_count(sd, "visual.transformer.resblocks.")):
        _block(out, f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}.", sd)
    out["vision_model.post_layernorm.weight"] = sd["visual.ln_post.weight"]
    out["vision_model.post_layernorm.bias"] = sd["visual.ln_post.bias"]
    out["visual_projection.weight"] = sd["visual.proj"].T
    # text
    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    pos = sd["positional_embedding"]
    if "positional_embedding_res" in sd:
        res = sd["positional_embedding_res"]
        if res.shape != pos.shape:
            raise SystemExit(f"positional_embedding {tuple(pos.shape)} vs _res {tuple(res.shape)}")
        pos = torch.cat([pos[:LONG_CLIP_SPLIT], res[LONG_CLIP_SPLIT:]], dim=0)
    else:
        print("warning: no positional_embedding_res (not a Long-CLIP checkpoint); "
              "using positional_embedding as is", file=sys.stderr)
    out["text_model.embeddings.position_embedding.weight"] = pos
    for i in range(_count(sd, "transformer.resblocks.")):
        _block(out, f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}.", sd)
    out["text_model.final_layer_norm.weight"] = sd["ln_final.weight"]
    out["text_model.final_layer_norm.bias"] = sd["ln_final.bias"]
    out["text_projection.weight"] = sd["text_projection"].T
    out["logit_scale"] = sd["logit_scale"] if "logit_scale" in sd else torch.tensor(math.log(100.0))
    # mask network, original names
    for k, v in sd.items():
        if k.startswith("mask_net."):
            out[k] = v
    if not any(k.startswith("mask_net.") for k in out):
        raise SystemExit("no mask_net.* tensors: not a SmartCLIP checkpoint")
    unknown = sorted(k for k in sd if not (
        k.startswith(("visual.", "transformer.", "mask_net.")) or k in {
            "token_embedding.weight", "positional_embedding", "positional_embedding_res",
            "ln_final.weight", "ln_final.bias", "text_projection", "logit_scale"}))
    if unknown:
        print(f"warning: ignored unknown keys: {unknown}", file=sys.stderr)
    return OrderedDict((k, (v.to(dtype) if dtype is not None else v).contiguous().clone())
                       for k, v in out.items())


def prepare_state_dict(sd: dict, rounding: str = "fp16", quiet: bool = False) -> tuple[OrderedDict, dict]:
    """The state dict the folder is made from: ``sd`` itself (rounding "none") or ``sd``
    with the official loader's fp16 rounding (rounding "fp16").  Returns (state dict, info)."""
    if rounding not in ROUNDING_CHOICES:
        raise ValueError(f"rounding must be one of {ROUNDING_CHOICES}, not {rounding!r}")
    if rounding == "none":
        info = {"weights_rounding": "none", "rounded_tensors": 0, "changed_values": 0, "rounded_keys": []}
        if not quiet:
            print("fp16 rounding: none (--full-precision): checkpoint values kept")
        return OrderedDict(sd), info
    out, keys, changed = round_like_official_loader(sd)
    info = {"weights_rounding": "fp16", "rounded_tensors": len(keys), "changed_values": changed,
            "rounded_keys": keys}
    if not quiet:
        n_values = sum(sd[k].numel() for k in keys)
        print(f"fp16 rounding: rounded {len(keys)} tensors to float16 as the official loader's "
              f"convert_weights does ({changed:,} of {n_values:,} values changed)")
    return out, info


def write_folder(sd: dict, out_dir: str | Path, dtype: torch.dtype | None = None,
                 rounding: str = "fp16", quiet: bool = False) -> dict:
    """Round (see ``prepare_state_dict``), convert and write ``out_dir``.  Returns the
    config dict; ``cfg["smartclip"]["weights_rounding"]`` records the rounding.  Verify
    with ``verify_folder(out_dir, prepare_state_dict(sd, rounding)[0])``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dtype is None:
        floats = {v.dtype for v in sd.values() if v.is_floating_point()}
        dtype = floats.pop() if len(floats) == 1 else torch.float32
    rounded, _ = prepare_state_dict(sd, rounding, quiet=quiet)
    tensors = convert_state_dict(rounded, dtype)
    cfg = hf_config(sd, dtype, rounding)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return cfg


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------
def _default_ids(context: int, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    ids = torch.zeros(n, context, dtype=torch.long)
    for i in range(n):
        length = 5 + 9 * i
        ids[i, 0] = SOT_ID
        ids[i, 1:length - 1] = torch.randint(1, 49000, (length - 2,), generator=g)
        ids[i, length - 1] = EOT_ID
    return ids


def verify_folder(out_dir: str | Path, sd: dict, pixel_values: torch.Tensor | None = None,
                  input_ids: torch.Tensor | None = None) -> dict:
    """Load the folder with transformers.CLIPModel and compare with our OpenAI-layout
    reference built from ``sd`` (both float32).  Returns max |diff| per output."""
    import transformers
    from transformers import CLIPModel

    # the converted file also holds mask_net.*, which CLIPModel reports as unexpected keys
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    out_dir = Path(out_dir)
    ref = SmartCLIP.from_state_dict(sd, torch.float32)
    hf = CLIPModel.from_pretrained(str(out_dir), dtype=torch.float32, attn_implementation="eager").eval()
    cfg = json.loads((out_dir / "config.json").read_text())
    sc = cfg["smartclip"]
    if pixel_values is None:
        size = cfg["vision_config"]["image_size"]
        pixel_values = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    if input_ids is None:
        input_ids = _default_ids(cfg["text_config"]["max_position_embeddings"])
    tensors = load_file(str(out_dir / "model.safetensors"))
    mask_sd = {k[len("mask_net."):]: v.float() for k, v in tensors.items() if k.startswith("mask_net.")}
    mask_net = MaskNet(sc["mask_width"], sc["mask_heads"], sc["mask_layers"])
    mask_net.load_state_dict(mask_sd, strict=True)
    with torch.no_grad():
        r_img = ref.encode_image(pixel_values)
        r_txt, r_hidden = ref.encode_text(input_ids)
        r_mask = ref.mask_logits(r_hidden)
        h_img = hf.get_image_features(pixel_values=pixel_values).pooler_output
        t_out = hf.get_text_features(input_ids=input_ids)
        h_txt, h_hidden = t_out.pooler_output, t_out.last_hidden_state
        h_mask = mask_net(h_hidden)
    diffs = {
        "image_embeds": float((r_img - h_img).abs().max()),
        "text_embeds": float((r_txt - h_txt).abs().max()),
        "text_last_hidden_state": float((r_hidden - h_hidden).abs().max()),
        "mask_logits": float((r_mask - h_mask).abs().max()),
    }
    scale = {
        "image_embeds": float(r_img.abs().max()),
        "text_embeds": float(r_txt.abs().max()),
        "text_last_hidden_state": float(r_hidden.abs().max()),
        "mask_logits": float(r_mask.abs().max()),
    }
    return {"max_abs_diff": diffs, "max_abs_value": scale}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=("keep", "f16", "f32"), default="keep")
    ap.add_argument("--full-precision", action="store_true",
                    help="keep the checkpoint's values (default: round the tensors the official "
                         "loader's convert_weights makes fp16, as loading with longclip.load does)")
    ap.add_argument("--allow-pickle", action="store_true",
                    help="fall back to torch.load(weights_only=False) (trusted files only)")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--tolerance", type=float, default=1e-5,
                    help="max |diff| relative to max(1, max |value|) accepted by the verification")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    sd, info = load_checkpoint(args.checkpoint, allow_pickle=args.allow_pickle)
    print(f"read {info['num_tensors']} tensors ({info['container']}, dtypes {info['dtypes']}, "
          f"weights_only={info['weights_only']})")
    dtype = {"keep": None, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    rounding = "none" if args.full_precision else "fp16"
    cfg = write_folder(sd, args.out_dir, dtype, rounding=rounding)
    print(f"wrote {args.out_dir}: vision {cfg['vision_config']['hidden_size']}x"
          f"{cfg['vision_config']['num_hidden_layers']}, text {cfg['text_config']['hidden_size']}x"
          f"{cfg['text_config']['num_hidden_layers']}, embed {cfg['projection_dim']}, "
          f"smartclip {json.dumps({k: v for k, v in cfg['smartclip'].items() if k != 'tokenizer'})}")
    if args.no_verify:
        return 0
    # the reference is built from the same values the folder was made from: rounded (or
    # not) and, with --dtype, cast to the output dtype
    ref_sd = prepare_state_dict(sd, rounding, quiet=True)[0]
    if dtype is not None:
        ref_sd = OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in ref_sd.items())
    res = verify_folder(args.out_dir, ref_sd)
    ok = True
    for k, d in res["max_abs_diff"].items():
        rel = d / max(1.0, res["max_abs_value"][k])
        ok &= rel <= args.tolerance
        print(f"verify {k:24s} max|diff| {d:.3e} (max|value| {res['max_abs_value'][k]:.3e})")
    print("verification", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
