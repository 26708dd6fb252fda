"""PyTorch/transformers side of the clipscope speed benchmark; compares with `clipscope bench`."""

# Usage (from the repository root, Python env with tools/requirements.txt):
#
#   python tools/bench_pytorch.py [--models vit-b32,vit-b16,default] [--threads N]
#       [--runs N] [--warmup N] [--repeats N] [--out FILE | --no-out] [--compare OLD.json]
#       [--json-out FILE] [--candle-json FILE | --candle-bin PATH | --no-candle]
#
# The comparison is repeated --repeats times (3). In each repeat, model by model, the candle
# side (`clipscope bench --models NAME`) runs and then the PyTorch side for the same model, so
# a change in the machine's load falls on both alike. Per (model, measure) the report gives each
# repeat's ratio candle/PyTorch, their median and min-max, and each side's median of its
# per-repeat medians. --out (default bench/<UTC date>-<cpu short name>.json) gets the machine,
# the command, every repeat's rows and the summary; --compare OLD.json sets this run's ratio
# medians beside an earlier file's. The PyTorch subprocesses get OMP_WAIT_POLICY=PASSIVE
# unless it is set already (spinning OpenMP threads made PyTorch 3-8x slower under load).
#
# Every model is measured in its own subprocess (this script re-invoked with
# --one-model NAME --json-out TMP) so that its peak RSS (VmHWM) belongs to that
# model alone. The measures, their names and the JSON schema are shared with the
# Rust side (`clipscope bench --json FILE`; src/cli/bench.rs, src/cli/bench_views.rs);
# see tools/README.md. Per model (S = the model's image size, 224 for all three):
#
#   load               from_pretrained (f32) + eval; 1 warm-up, a quarter of --runs (at least 3)
#   image_encode       random (1, 3, S, S) pixels -> all tokens, post_layernorm + visual_projection
#   text_encode_8      the 8 PROMPTS, tokenisation included, padded to the longest
#   dcsm_8             the 8 cosine maps over each prompt's real tokens, to NumPy
#   dcsm_scorer_8      global z-score + dcsm_reference.Scorer on 8 random rows x 30 maps
#   smartclip_mask_8   SmartCLIP mask net on (8, T, W) random input, sigmoid
#   prompt_edit_8      prompts padded to 30 -> text encoder -> maps vs cached image tokens -> scorer
#
# and the map-view measures, with tools/map_sources.py (the reference of the Rust map
# sources, tools/MAP_SOURCES.md) on transformers' eager attention (the model is switched
# from its default implementation to eager for these four only; f32, same threads):
#
#   encode_raw_states  map_sources.image_tokens(model, pixels, "raw") on image_encode's pixels
#   encode_clearclip   map_sources.image_tokens(model, pixels, "clearclip"), same pixels
#   image_encode_448   raw tokens of random 448x448 pixels, position table interpolated as
#                      transformers does (interpolate_pos_encoding=True), all tokens projected
#   tiles_1024x768     a decoded 1024x768 random RGB PIL image (seed 7) -> the processor's resize
#                      (shortest side S, no crop) -> tile_layout windows of S x S -> raw tokens
#                      per window -> cosine maps of the 8 prompts (text tokens computed once,
#                      untimed) -> combine_windows: one map per token (MAP_SOURCES.md section 9).
#                      min(--warmup, 1) warm-up and ceil(--runs / 2) timed runs, as the Rust side
#
#   peak_rss           VmHWM at the end (after all the measures above), MB = MiB

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import floors  # noqa: E402  (tools/floors.py, beside this script)

# Never reach for the hub (model folders are local) and keep stderr quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
TOKENIZER_JSON = REPO / "assets" / "clip-tokenizer" / "tokenizer.json"
BENCH_MODELS = REPO / "target" / "bench-models"
DEFAULT_CANDLE_BIN = REPO / "target" / "release" / "clipscope"
ALL_MODELS = ("vit-b32", "vit-b16", "default", "siglip-b16")
# CLIP vision towers, whose FLOPs tools/floors.py counts (SigLIP's pooling head is not counted).
FLOOR_MODELS = ("vit-b32", "vit-b16", "default")

PROMPTS = (
    "a photo of a dog",
    "a dog without a collar",
    "a red circle above a blue square",
    "a small green triangle left of a big yellow circle",
    "no cat on the sofa",
    "two people walking on a beach at sunset",
    "a blue square",
    "a red circle below a green triangle and a small purple star",
)
BOS_ID, EOS_ID = 49406, 49407
SCORER_COLUMNS = 30  # DCSM text columns (prompts padded/truncated to 30 tokens)


def load_runs(runs: int) -> int:
    """Timed runs of `load` (after one warm-up): a quarter of --runs, at least 3
    (5 for the default 20), as `clipscope bench` does."""
    return max(runs // 4, 3)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def openai_b_config(patch: int) -> dict:
    """HF CLIPConfig kwargs with the shapes of openai/clip-vit-base-patch{32,16}."""
    return {
        "projection_dim": 512,
        "text_config": {
            "vocab_size": 49408,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": EOS_ID,
            "projection_dim": 512,
        },
        "vision_config": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": patch,
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "projection_dim": 512,
        },
    }


RANDOM_MODELS = {"vit-b32": 32, "vit-b16": 16}


def model_dir(name: str) -> Path:
    if name == "default":
        return REPO / "assets" / "default-model"
    return BENCH_MODELS / name


def prepare_random_model(name: str) -> None:
    """Write target/bench-models/<name>/ (config.json + f32 model.safetensors,
    random weights, seed 0) unless it exists. Written to a temporary sibling
    folder and renamed, so a reader never sees half a model."""
    out = model_dir(name)
    if name not in RANDOM_MODELS or (out / "model.safetensors").exists():
        return
    import inspect

    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(**openai_b_config(RANDOM_MODELS[name]))).to(torch.float32).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out.parent))
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5; v5 always writes safetensors
    model.save_pretrained(tmp, **kwargs)
    if not (tmp / "model.safetensors").exists():
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {tmp}")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private
    for f in tmp.iterdir():
        os.chmod(f, 0o666 & ~umask)
    try:
        tmp.rename(out)
    except OSError:  # someone else (e.g. `clipscope bench`) wrote it meanwhile
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print(f"[bench_pytorch] wrote random {name} to {out}", file=sys.stderr)


# --------------------------------------------------------------------------
# SmartCLIP mask network (fallback when tools/smartclip_reference.py is absent)
# --------------------------------------------------------------------------


def load_masknet_class():
    """MaskNet from tools/smartclip_reference.py if importable, else our own."""
    sys.path.insert(0, str(TOOLS))
    try:
        from smartclip_reference import MaskNet  # type: ignore

        return MaskNet, "tools/smartclip_reference.py"
    except Exception as e:  # absent or broken: use the small equivalent below
        print(f"[bench_pytorch] smartclip_reference.MaskNet unavailable ({e!r}); using built-in", file=sys.stderr)
    finally:
        sys.path.remove(str(TOOLS))

    import torch
    import torch.nn as nn

    class QuickGELU(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    class MaskNet(nn.Module):
        """One OpenAI ResidualAttentionBlock (pre-LN, non-causal, MLP 4x
        QuickGELU) + attention pool (Linear(W->1), softmax over positions,
        weighted sum). (N, T, W) -> (N, W) mask logits."""

        def __init__(self, width: int, heads: int):
            super().__init__()
            self.ln_1 = nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))
            self.pool = nn.Linear(width, 1)

        def forward(self, x):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            x = x + self.mlp(self.ln_2(x))
            w = torch.softmax(self.pool(x).squeeze(-1), dim=-1)  # (N, T)
            return (w.unsqueeze(-1) * x).sum(dim=1)

    return MaskNet, "tools/bench_pytorch.py (built-in)"


# --------------------------------------------------------------------------
# Measuring one model (runs in its own process)
# --------------------------------------------------------------------------


def stats(name: str, measure: str, times_ms: list[float]) -> dict:
    import numpy as np

    t = np.asarray(times_ms, dtype=np.float64)
    return {
        "model": name,
        "measure": measure,
        "median_ms": float(np.median(t)),
        "p10_ms": float(np.percentile(t, 10)),
        "p90_ms": float(np.percentile(t, 90)),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
        "runs": len(times_ms),
    }


def timed(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def proc_status_mb(key: str = "VmHWM") -> float:
    """A memory line of /proc/self/status (VmHWM = peak RSS) in MB (MiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MB
    raise RuntimeError(f"no {key} in /proc/self/status")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_siglip(name: str, threads: int, runs: int, warmup: int) -> dict:
    """SigLIP base patch16-224 on the random weights `clipscope bench` wrote: the same work as
    clipscope's rows (src/cli/bench_siglip.rs). Image: the trunk, the pooling head and every
    patch through the head's value/output/MLP path; text: 8 prompts padded to 64, the head on
    every position; DCSM: per prompt (patches, L_i) cosines on the host; a prompt edit: text,
    maps and sigmoid scores."""
    import gc

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import SiglipModel, SiglipTokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    path = model_dir(name)
    if not (path / "model.safetensors").exists():
        raise SystemExit(f"{path} missing: run `clipscope bench --models siglip-b16` once first")
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    results = []

    def load():
        return SiglipModel.from_pretrained(path, **{dtype_kw: torch.float32}).eval()

    model = load()
    load_times = []
    for _ in range(load_runs(runs)):
        model = None
        gc.collect()
        t0 = time.perf_counter()
        model = load()
        load_times.append((time.perf_counter() - t0) * 1e3)
    results.append(stats(name, "load", load_times))
    tok = SiglipTokenizer(str(path / "spiece.model"))
    vcfg = model.config.vision_config
    vision, text, head = model.vision_model, model.text_model, model.vision_model.head
    h = vcfg.hidden_size
    w_v = head.attention.in_proj_weight[2 * h:]
    b_v = head.attention.in_proj_bias[2 * h:]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, vcfg.image_size, vcfg.image_size, generator=gen)
    prompts = list(PROMPTS)
    scale, bias = model.logit_scale.exp(), model.logit_bias

    def image_encode():
        hidden = vision(pixel_values=pixels).last_hidden_state  # after post_layernorm
        pooled = head(hidden)
        y = head.attention.out_proj(F.linear(hidden, w_v, b_v))
        return y + head.mlp(head.layernorm(y)), pooled

    def text_encode():
        enc = tok(prompts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
        hidden = text(input_ids=enc["input_ids"]).last_hidden_state
        return text.head(hidden), enc["attention_mask"].sum(dim=1).tolist()

    def maps_of(dense, tokens, lengths):
        img = F.normalize(dense[0], dim=-1)
        txt = F.normalize(tokens, dim=-1)
        return [(img @ txt[i, :n].T).numpy() for i, n in enumerate(lengths)]

    with torch.inference_mode():
        results.append(stats(name, "image_encode", timed(image_encode, warmup, runs)))
        results.append(stats(name, "text_encode_8", timed(text_encode, warmup, runs)))
        dense, pooled = image_encode()
        tokens, lengths = text_encode()
        results.append(stats(name, "dcsm_8", timed(lambda: maps_of(dense, tokens, lengths), warmup, runs)))
        img_pooled = F.normalize(pooled, dim=-1)

        def prompt_edit():
            t, n = text_encode()
            maps = maps_of(dense, t, n)
            cos = img_pooled @ F.normalize(t[:, -1], dim=-1).T
            return maps, torch.sigmoid(cos * scale + bias).numpy()

        results.append(stats(name, "prompt_edit_8", timed(prompt_edit, warmup, runs)))
    results.append({"model": name, "measure": "peak_rss", "value_mb": proc_status_mb("VmHWM")})
    return {"tool": "pytorch", "versions": versions(), "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "results": results, "notes": {name: {"model_dir": str(path)}}}


def bench_one_model(name: str, threads: int, runs: int, warmup: int) -> dict:
    """All measures for one model, in this process. Returns a schema document."""
    import gc

    if name == "siglip-b16":
        return bench_siglip(name, threads, runs, warmup)

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import CLIPModel, PreTrainedTokenizerFast

    sys.path.insert(0, str(TOOLS))
    from dcsm_reference import Scorer, global_zscore

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    rss_imports = proc_status_mb("VmRSS")  # the runtime alone, before any model
    path = model_dir(name)
    if not (path / "model.safetensors").exists():
        raise SystemExit(f"{path}/model.safetensors missing (run without --one-model to create it)")
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    results = []

    # load: safetensors folder -> f32 model in eval mode. The previous model is
    # freed (untimed) before each load so at most one copy is alive.
    def load():
        return CLIPModel.from_pretrained(path, **{dtype_kw: torch.float32}).eval()

    # Warm-up (untimed) also checks that the files match CLIPModel's names.
    model, info = CLIPModel.from_pretrained(path, output_loading_info=True, **{dtype_kw: torch.float32})
    bad = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        print(f"[bench_pytorch] WARNING {path}: {bad}", file=sys.stderr)
    load_times = []
    for _ in range(load_runs(runs)):
        model = None
        gc.collect()
        t0 = time.perf_counter()
        model = load()
        load_times.append((time.perf_counter() - t0) * 1e3)
    results.append(stats(name, "load", load_times))

    attn_implementation = model.config._attn_implementation  # of every measure but the map views
    vcfg, tcfg = model.config.vision_config, model.config.text_config
    n_patches = (vcfg.image_size // vcfg.patch_size) ** 2
    rows = 1 + n_patches
    text_ctx, text_width = tcfg.max_position_embeddings, tcfg.hidden_size
    vision, text = model.vision_model, model.text_model
    vproj, tproj = model.visual_projection, model.text_projection

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER_JSON),
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    assert tok.pad_token_id == EOS_ID
    prompts = list(PROMPTS)

    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, vcfg.image_size, vcfg.image_size, generator=gen)

    def image_encode():
        h = vision(pixel_values=pixels).last_hidden_state
        return vproj(vision.post_layernorm(h))  # (1, rows, proj): all tokens

    def text_encode(max_length: int | None):
        if max_length is None:  # pad to the longest prompt
            enc = tok(prompts, padding=True, return_tensors="pt")
        else:
            enc = tok(prompts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        h = text(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return tproj(h), enc["attention_mask"]  # (8, T, proj), (8, T)

    def cosine_maps(img_tokens, txt_tokens, lengths):
        """Per prompt, (rows, L_i) cosine maps over its real tokens, on the host."""
        img = F.normalize(img_tokens[0], dim=-1)
        txt = F.normalize(txt_tokens, dim=-1)
        return [(img @ txt[i, :n].T).numpy() for i, n in enumerate(lengths)]

    torch.manual_seed(0)
    scorer = Scorer(rows=rows, columns=SCORER_COLUMNS).eval()
    MaskNet, masknet_src = load_masknet_class()  # imported at run time: may appear later
    torch.manual_seed(0)
    masknet = MaskNet(text_width, max(1, text_width // 64)).eval()

    with torch.inference_mode():
        results.append(stats(name, "image_encode", timed(image_encode, warmup, runs)))
        results.append(stats(name, "text_encode_8", timed(lambda: text_encode(None), warmup, runs)))

        img_tokens = image_encode()
        txt_tokens, mask = text_encode(None)
        lengths = mask.sum(dim=1).tolist()
        maps = cosine_maps(img_tokens, txt_tokens, lengths)
        assert all(m.shape == (rows, n) for m, n in zip(maps, lengths))
        results.append(stats(name, "dcsm_8", timed(lambda: cosine_maps(img_tokens, txt_tokens, lengths), warmup, runs)))

        rand_maps = torch.randn(8, 1, rows, SCORER_COLUMNS, generator=gen)

        def dcsm_scorer():
            return scorer(global_zscore(rand_maps))

        assert dcsm_scorer().shape == (8, 1)
        results.append(stats(name, "dcsm_scorer_8", timed(dcsm_scorer, warmup, runs)))

        mask_in = torch.randn(8, text_ctx, text_width, generator=gen)

        def smartclip_mask():
            return torch.sigmoid(masknet(mask_in))

        shape = tuple(smartclip_mask().shape)
        assert shape == (8, text_width), f"MaskNet ({masknet_src}) gave {shape}, want (8, {text_width})"
        results.append(stats(name, "smartclip_mask_8", timed(smartclip_mask, warmup, runs)))

        # A prompt edit: the image tokens are cached; re-tokenise and encode the
        # 8 prompts padded to 30 columns, (8, rows, 30) cosine maps to the host,
        # global z-score, scorer CNN, scores to the host.
        img_n = F.normalize(img_tokens[0], dim=-1)

        def prompt_edit():
            t, _ = text_encode(SCORER_COLUMNS)
            m = torch.einsum("re,kte->krt", img_n, F.normalize(t, dim=-1))  # (8, rows, 30)
            host_maps = m.numpy()
            scores = scorer(global_zscore(m)).numpy()
            return host_maps, scores

        pm, ps = prompt_edit()
        assert pm.shape == (8, rows, SCORER_COLUMNS) and ps.shape == (8,)
        results.append(stats(name, "prompt_edit_8", timed(prompt_edit, warmup, runs)))

        views_note = map_view_measures(name, model, pixels, text_encode, warmup, runs, results)

    results.append({"model": name, "measure": "peak_rss", "value_mb": proc_status_mb("VmHWM")})
    return {
        "tool": "pytorch",
        "versions": versions(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "results": results,
        "notes": {
            name: {
                "model_dir": str(path),
                "load_problems": bad,
                "attn_implementation": attn_implementation,
                "image_rows": rows,
                "text_tokens_longest": int(max(lengths)),
                "smartclip_masknet": masknet_src,
                "rss_after_imports_mb": rss_imports,
                "map_views": views_note,
            }
        },
    }


TILE_IMAGE_SIZE = (1024, 768)  # (width, height) of the tiles_1024x768 image
TILE_IMAGE_SEED = 7
PIXELS_448_SEED = 448  # its own generator: image_encode's and the later random inputs are unchanged


def map_view_measures(name: str, model, pixels, text_encode, warmup: int, runs: int, results: list) -> dict:
    """encode_raw_states, encode_clearclip, image_encode_448, tiles_1024x768 (see the top of
    this file) with tools/map_sources.py, appended to `results`; run inside inference_mode.
    The model runs eager attention for these (map_sources' setting), then is switched back.
    -> a note for the report (attention, shapes, layout, agreement with image_encode)."""
    import numpy as np
    import torch
    from PIL import Image

    import map_sources  # tools/ is on sys.path (bench_one_model)

    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        geo = map_sources.vision_geometry(model)
        s, p, proj = geo["image_size"], geo["patch_size"], geo["projection_dim"]
        px = pixels[0]  # image_encode's pixels, (3, S, S)
        rows = 1 + (s // p) ** 2

        def encode_raw_states():
            return map_sources.image_tokens(model, px, "raw")

        def encode_clearclip():
            return map_sources.image_tokens(model, px, "clearclip")

        raw = encode_raw_states()
        assert raw.shape == (rows, proj), raw.shape
        ref = model.visual_projection(model.vision_model.post_layernorm(
            model.vision_model(pixel_values=pixels).last_hidden_state))[0]  # image_encode, eager
        raw_vs_image_encode = float((raw - ref).abs().max())
        assert raw_vs_image_encode <= 1e-4 * max(1.0, float(ref.abs().max())), raw_vs_image_encode
        results.append(stats(name, "encode_raw_states", timed(encode_raw_states, warmup, runs)))
        clear = encode_clearclip()
        assert clear.shape == (rows, proj), clear.shape
        results.append(stats(name, "encode_clearclip", timed(encode_clearclip, warmup, runs)))

        big = 448
        assert big % p == 0, (big, p)
        px448 = torch.randn(3, big, big, generator=torch.Generator().manual_seed(PIXELS_448_SEED))
        rows_448 = 1 + (big // p) ** 2

        def image_encode_448():
            return map_sources.image_tokens(model, px448, "raw")  # interpolate_pos_encoding=True

        assert image_encode_448().shape == (rows_448, proj)
        results.append(stats(name, "image_encode_448", timed(image_encode_448, warmup, runs)))

        # The 8 prompts' projected text tokens (real tokens only), once, untimed.
        txt, mask = text_encode(None)
        lengths = mask.sum(dim=1).tolist()
        txt_tokens = [txt[i, :n] for i, n in enumerate(lengths)]
        w, h = TILE_IMAGE_SIZE
        noise = np.random.default_rng(TILE_IMAGE_SEED).integers(0, 256, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(noise, "RGB")  # decoded, in memory

        def tiles():
            pv, _ = map_sources.preprocess_resized_image(image, s, check=False)  # the processor's resize
            maps, layout, _ = map_sources.tiled_maps_pixels(model, pv, "raw", txt_tokens)
            return maps, layout

        # Untimed check: the processor's pixels equal MAP_SOURCES.md's explicit ones.
        _, info = map_sources.preprocess_resized_image(image, s, check=True)
        maps, layout = tiles()
        long_side = max(info["resized"])
        assert layout["long_side"] == long_side and len(maps) == len(txt_tokens)
        for m, n in zip(maps, lengths):
            assert m.shape == (n, s // p, -(-long_side // p)) and np.isfinite(m).all(), m.shape
        results.append(stats(name, "tiles_1024x768", timed(tiles, min(warmup, 1), -(-runs // 2))))
    finally:
        model.set_attn_implementation(before)
    return {
        "attn_implementation": "eager",
        "rows": rows,
        "rows_448": rows_448,
        "raw_vs_image_encode_max_abs": raw_vs_image_encode,
        "tiles": dict(info, **layout, prompts=len(txt_tokens), tokens=int(sum(lengths))),
    }


def versions() -> dict:
    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------
# The machine, for the report
# --------------------------------------------------------------------------

FLAG_SUMMARY = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _package_version(name: str) -> str | None:
    """An installed package's version without importing it (keeps this process small)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info() -> dict:
    """CPU (name, family/model, a few ISA flags, cores), memory, OS/kernel, torch and
    transformers versions, the clipscope commit. Linux files, best effort elsewhere."""
    first, physical_ids, logical = {}, set(), 0
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        if key == "processor":
            logical += 1
        elif key == "physical id":
            physical_ids.add(value)
        first.setdefault(key, value)
    flags = set(first.get("flags", "").split())
    family, model = first.get("cpu family"), first.get("model")
    physical = None
    if first.get("cpu cores", "").isdigit():
        physical = int(first["cpu cores"]) * max(1, len(physical_ids))
    memory_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = round(int(line.split()[1]) / 1024.0)
    except (OSError, ValueError, IndexError):
        pass
    os_name = None
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": cpu_name(),
        "cpu_family": family,
        "cpu_model": model,
        "cpu_family_model": f"{family}/{model}" if family and model else "unknown",  # as clipscope bench
        "flags": {f: f in flags for f in FLAG_SUMMARY} if flags else None,
        "hypervisor": ("hypervisor" in flags) if flags else None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "physical_cores": physical,
        "memory_mb": memory_mb,
        "os": os_name or platform.platform(),
        "kernel": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": platform.python_version(),
        "torch": _package_version("torch"),
        "transformers": _package_version("transformers"),
        "clipscope_commit": commit,
        "clipscope_tracked_changes": bool(dirty) if dirty is not None else None,
    }


def machine_line(m: dict) -> str:
    yn = lambda f: "?" if not m.get("flags") else ("yes" if m["flags"].get(f) else "no")
    cores = f"{m['physical_cores']} cores" if m.get("physical_cores") else "? cores"
    cores += f" ({m['logical_cpus']} logical" + (f", {m['usable_cpus']} usable" if m.get("usable_cpus") != m.get("logical_cpus") else "") + ")"
    mem = f"{m['memory_mb'] / 1024:.1f} GiB" if m.get("memory_mb") else "? GiB"
    commit = (m.get("clipscope_commit") or "?")[:12] + (" + local changes" if m.get("clipscope_tracked_changes") else "")
    parts = [
        f"{m['cpu']} (family/model {m['cpu_family_model']})",
        f"avx2 {yn('avx2')}, avx512f {yn('avx512f')}" + (", virtualised" if m.get("hypervisor") else ""),
        cores,
        mem,
        f"{m['os']}, {m['kernel']}",
        f"torch {m.get('torch')}, transformers {m.get('transformers')}",
        f"clipscope {commit}",
    ]
    return "; ".join(parts)


def cpu_short_name(m: dict) -> str:
    """'Intel(R) Xeon(R) Processor', family 6 model 167 -> 'intel-xeon-6-167'. The family and
    model numbers tell apart machines /proc/cpuinfo names alike (a bare 'AMD EPYC')."""
    s = re.sub(r"\((R|TM)\)", " ", m.get("cpu") or "cpu", flags=re.I)
    s = re.sub(r"@.*$", " ", s)
    s = re.sub(r"\b(with|w/)\s.*$", " ", s, flags=re.I)
    s = re.sub(r"\b(CPU|Processor|\d+-Core)\b", " ", s, flags=re.I)
    s = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40].strip("-") or "cpu"
    if m.get("cpu_family") and m.get("cpu_model"):
        s += f"-{m['cpu_family']}-{m['cpu_model']}"
    return s


def default_out_path(m: dict, when: datetime.datetime) -> Path:
    base = REPO / "bench" / f"{when:%Y-%m-%d}-{cpu_short_name(m)}"
    path, n = base.with_suffix(".json"), 2
    while path.exists():  # a second run on the same day keeps the first file
        path, n = Path(f"{base}-{n}.json"), n + 1
    return path


def candle_machine(doc: dict | None) -> dict | None:
    """What `clipscope bench --json` says about the machine and itself (top-level fields,
    and its `machine` block if it has one)."""
    if not doc:
        return None
    keys = ("tool", "version", "threads", "cpu", "cpu_family_model", "isa", "gemm_kernel", "few_rows_kernel")
    out = {k: doc[k] for k in keys if k in doc}
    if isinstance(doc.get("machine"), dict):
        out.update(doc["machine"])
    return out


# --------------------------------------------------------------------------
# The two sides, one model at a time
# --------------------------------------------------------------------------


def pytorch_env() -> tuple[dict, dict]:
    """The PyTorch subprocesses' environment: OMP_WAIT_POLICY=PASSIVE unless it is set.
    Under load, OpenMP threads spinning at barriers made PyTorch 3-8x slower (earlier
    5-25x) on a 2-core machine; passive waiting sleeps instead."""
    env = os.environ.copy()
    if "OMP_WAIT_POLICY" in os.environ:
        note = {"value": os.environ["OMP_WAIT_POLICY"], "set_by": "the caller's environment (kept)"}
    else:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        note = {"value": "PASSIVE", "set_by": "bench_pytorch.py (default; set OMP_WAIT_POLICY to override)"}
    note["why"] = ("PyTorch's OpenMP threads spin while waiting; when another process shares the "
                   "cores, spinning made PyTorch runs 3-8x slower on a 2-core machine. PASSIVE makes "
                   "them sleep. Applies to the PyTorch subprocesses only, not to clipscope.")
    return env, note


def run_candle(binary: Path, models: list[str], threads: int, runs: int, warmup: int) -> tuple[dict | None, str | None, list[str]]:
    """`<binary> bench --json TMP ...` -> (document or None, error or None, command). Its own
    table goes to stderr, so stdout holds only this script's report."""
    fd, out = tempfile.mkstemp(prefix="candle-bench-", suffix=".json")
    os.close(fd)
    cmd = [str(binary), "bench", "--json", out, "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warmup), "--models", ",".join(models)]
    print(f"[bench_pytorch] candle: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        rc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr).returncode
        if rc != 0:
            return None, f"clipscope bench exited with status {rc}", cmd
        with open(out) as f:
            return json.load(f), None, cmd
    except (OSError, json.JSONDecodeError) as e:
        return None, f"clipscope bench failed ({e})", cmd
    finally:
        os.unlink(out)


def run_pytorch_model(name: str, threads: int, runs: int, warmup: int, env: dict) -> tuple[dict | None, str | None, list[str]]:
    """One model in a fresh subprocess -> (document or None, error or None, command)."""
    if name in RANDOM_MODELS and not (model_dir(name) / "model.safetensors").exists():
        # Outside the measuring process; normally `clipscope bench` has written it already.
        subprocess.run([sys.executable, __file__, "--prepare", name], check=True)
    fd, out = tempfile.mkstemp(prefix=f"pytorch-bench-{name}-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, __file__, "--one-model", name, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup), "--json-out", out]
    print(f"[bench_pytorch] pytorch: {name} (OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY')})", file=sys.stderr, flush=True)
    try:
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            return None, f"PyTorch subprocess exited with status {rc}", cmd
        with open(out) as f:
            return json.load(f), None, cmd
    except (OSError, json.JSONDecodeError) as e:
        return None, f"PyTorch subprocess failed ({e})", cmd
    finally:
        os.unlink(out)


def merge_docs(docs: list[dict]) -> dict | None:
    """Per-model documents of one side -> one document (results concatenated, notes merged)."""
    if not docs:
        return None
    merged = json.loads(json.dumps(docs[0]))
    for d in docs[1:]:
        merged["results"] = merged.get("results", []) + d.get("results", [])
        if isinstance(d.get("notes"), dict):
            merged.setdefault("notes", {}).update(d["notes"])
    return merged


# --------------------------------------------------------------------------
# Comparison, summary over the repeats, report
# --------------------------------------------------------------------------


def value_key(measure: str) -> str:
    return "value_mb" if measure == "peak_rss" else "median_ms"


def comparison(candle: dict | None, torch_doc: dict | None) -> list[dict]:
    """One row per (model, measure) found on either side, PyTorch order first."""
    index = {}
    for side, doc in (("pytorch", torch_doc), ("candle", candle)):
        for r in (doc or {}).get("results", []):
            index.setdefault((r["model"], r["measure"]), {})[side] = r
    rows = []
    for (model, measure), sides in index.items():
        c, p = sides.get("candle"), sides.get("pytorch")
        key = value_key(measure)
        ratio = c[key] / p[key] if c and p and c.get(key) is not None and p.get(key) else None
        rows.append({"model": model, "measure": measure, "candle": c, "pytorch": p, "ratio_candle_over_pytorch": ratio})
    return rows


def _spread(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(repeats: list[dict]) -> list[dict]:
    """Per (model, measure) over the repeats: each repeat's candle and PyTorch value (median_ms,
    or value_mb for peak_rss) and ratio; the ratios' median, min and max; each side's median of
    its per-repeat medians (and their min, max)."""
    index = {}
    for rec in repeats:
        for row in rec.get("comparison", []):
            key = value_key(row["measure"])
            c, p = row["candle"], row["pytorch"]
            index.setdefault((row["model"], row["measure"]), []).append({
                "repeat": rec["repeat"],
                "candle": c.get(key) if c else None,
                "pytorch": p.get(key) if p else None,
                "ratio": row["ratio_candle_over_pytorch"],
            })
    out = []
    for (model, measure), per in index.items():
        ratios = [x["ratio"] for x in per if x["ratio"] is not None]
        r, c = _spread(ratios), _spread([x["candle"] for x in per if x["candle"] is not None])
        p = _spread([x["pytorch"] for x in per if x["pytorch"] is not None])
        out.append({
            "model": model,
            "measure": measure,
            "value": value_key(measure),
            "per_repeat": per,
            "ratios": ratios,
            "ratio_median": r["median"],
            "ratio_min": r["min"],
            "ratio_max": r["max"],
            "ratio_spread_rel": (r["max"] - r["min"]) / r["median"] if ratios and r["median"] else None,
            "repeats": len(ratios),
            "candle_median": c["median"], "candle_min": c["min"], "candle_max": c["max"],
            "pytorch_median": p["median"], "pytorch_min": p["min"], "pytorch_max": p["max"],
        })
    return out


def _num(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if unit == "MB" else f"{v:.2f}"


def _side_cell(s: dict, side: str) -> str:
    unit = "MB" if s["measure"] == "peak_rss" else "ms"
    med, lo, hi = s[f"{side}_median"], s[f"{side}_min"], s[f"{side}_max"]
    if med is None:
        return "-"
    cell = _num(med, unit)
    if lo != hi:
        cell += f" ({_num(lo, unit)}–{_num(hi, unit)})"
    return cell + (" MB" if unit == "MB" else "")


def _ratio(v: float | None) -> str:
    return f"{v:.3g}" if v is not None else "-"


def _print_rows(head: list[str], body: list[list[str]]) -> None:
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    line = lambda cells: " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(head))
    print("-+-".join("-" * w for w in widths))
    for b in body:
        print(line(b))


def _timings_then_memory(summary: list[dict]) -> list[dict]:
    return [s for s in summary if s["measure"] != "peak_rss"] + [s for s in summary if s["measure"] == "peak_rss"]


def print_table(doc: dict) -> None:
    summary, repeats = doc["summary"], doc["repeats"]
    candle = next((r["candle"] for r in repeats if r.get("candle")), None)
    torch_doc = next((r["pytorch"] for r in repeats if r.get("pytorch")), None)
    settings = doc["settings"]
    print(f"machine: {doc['machine_line']}")
    if torch_doc:
        print(f"pytorch: threads {torch_doc['threads']}, OMP_WAIT_POLICY={doc['notes']['omp_wait_policy']['value']}, "
              + ", ".join(f"{k} {v}" for k, v in torch_doc["versions"].items()))
    else:
        print("pytorch: no numbers")
    if candle:
        cm = candle_machine(candle)
        vers = f"{cm.get('tool', 'candle')} {cm['version']}" if "version" in cm else cm.get("tool", "candle")
        extra = ", ".join(str(cm[k]) for k in ("isa", "gemm_kernel") if k in cm)
        print(f"candle:  threads {cm.get('threads')}, {vers}" + (f", {extra}" if extra else "")
              + ("" if settings["interleaved"] else f" (from {settings['candle_source']}, not re-run)"))
        if torch_doc and cm.get("threads") != torch_doc["threads"]:
            print("WARNING: the two sides used different thread counts")
    else:
        print("candle:  no numbers")
    print(f"repeats: {len(repeats)} ({doc['notes']['order']}); --runs {settings['runs']}, --warmup {settings['warmup']}; "
          f"load average {doc.get('loadavg_start')} at start, {doc.get('loadavg_end')} at the end")
    print()
    head = ["model", "measure", "candle median (min–max) ms", "pytorch median (min–max) ms",
            "ratio per repeat", "ratio median", "ratio min–max", "repeats"]
    body = []
    for s in _timings_then_memory(summary):
        per = " ".join(_ratio(x["ratio"]) for x in s["per_repeat"])
        minmax = f"{_ratio(s['ratio_min'])}–{_ratio(s['ratio_max'])}" if s["repeats"] else "-"
        body.append([s["model"], s["measure"], _side_cell(s, "candle"), _side_cell(s, "pytorch"),
                     per, _ratio(s["ratio_median"]), minmax, str(s["repeats"])])
    _print_rows(head, body)
    print()
    print("ratio = candle / PyTorch (> 1: candle slower or larger), per repeat on that repeat's medians;"
          " side columns: the median of the repeats' medians (min–max over repeats)")
    base = {}
    for r in repeats:
        for m, n in ((r.get("pytorch") or {}).get("notes") or {}).items():
            if n.get("rss_after_imports_mb") is not None:
                base.setdefault(m, []).append(n["rss_after_imports_mb"])
    if doc.get("floors"):
        print()
        print("compute floor (tools/floors.py):")
        for line in floors.describe(doc["floors"]):
            print("  " + line)
    if base:
        print("pytorch RSS after `import torch, transformers`, before any model: "
              + ", ".join(f"{m} {statistics.median(v):.0f} MB" for m, v in base.items()))
    if doc.get("errors"):
        print()
        for e in doc["errors"]:
            print(f"ERROR repeat {e['repeat']} {e['side']} {e['model']}: {e['error']}")


def old_summary(doc: dict) -> dict:
    """(model, measure) -> summary-like dict, from a file written by --out (its `summary`) or
    by --json-out (its `summary`, or before --repeats existed, its `comparison`)."""
    if doc.get("summary"):
        return {(s["model"], s["measure"]): s for s in doc["summary"]}
    out = {}
    for row in doc.get("comparison", []):
        key = value_key(row["measure"])
        c, p, ratio = row.get("candle"), row.get("pytorch"), row.get("ratio_candle_over_pytorch")
        out[(row["model"], row["measure"])] = {
            "ratio_median": ratio, "ratio_min": ratio, "ratio_max": ratio, "repeats": 1 if ratio else 0,
            "candle_median": c.get(key) if c else None, "pytorch_median": p.get(key) if p else None,
        }
    return out


def print_compare(doc: dict, old: dict, old_path: str) -> None:
    old_rows = old_summary(old)
    om = old.get("machine") or {}
    print()
    print(f"compared with {old_path} ({old.get('created_utc', 'date unknown')}):")
    print(f"  then: {old.get('machine_line') or old.get('cpu', 'machine unknown')}")
    print(f"  now:  {doc['machine_line']}")
    m = doc["machine"]
    old_cpu = om.get("cpu") or old.get("cpu")  # a --json-out file has only `cpu` (and its candle block)
    old_fm = om.get("cpu_family_model") or (old.get("candle") or {}).get("cpu_family_model")
    if (old_cpu and old_cpu != m.get("cpu")) or (old_fm and old_fm != m.get("cpu_family_model")):
        print("  WARNING: another CPU; ratios compare, absolute times hardly")
    old_threads = (old.get("settings") or {}).get("threads", old.get("threads"))
    if old_threads is not None and old_threads != doc["settings"]["threads"]:
        print(f"  WARNING: {old_threads} threads then, {doc['settings']['threads']} now")
    old_omp = ((old.get("notes") or {}).get("omp_wait_policy") or {}).get("value", "not recorded")
    if old_omp != doc["notes"]["omp_wait_policy"]["value"]:
        print(f"  note: OMP_WAIT_POLICY {old_omp} then, {doc['notes']['omp_wait_policy']['value']} now")
    print()

    def rel(a, b):
        return f"{a / b:.3g}" if a is not None and b else "-"

    head = ["model", "measure", "ratio median", "ratio min–max", "old ratio median", "old min–max",
            "ratio now/old", "candle now/old", "pytorch now/old"]
    body, apart = [], False
    for s in _timings_then_memory(doc["summary"]):
        o = old_rows.get((s["model"], s["measure"]))
        if o is None:
            continue
        change = rel(s["ratio_median"], o.get("ratio_median"))
        if (s["repeats"] >= 2 and (o.get("repeats") or 0) >= 2 and o.get("ratio_min") is not None
                and (s["ratio_min"] > o["ratio_max"] or s["ratio_max"] < o["ratio_min"])):
            change += " *"
            apart = True
        mm = lambda r: f"{_ratio(r.get('ratio_min'))}–{_ratio(r.get('ratio_max'))}" if r.get("repeats") else "-"
        body.append([s["model"], s["measure"], _ratio(s["ratio_median"]), mm(s), _ratio(o.get("ratio_median")), mm(o),
                     change, rel(s["candle_median"], o.get("candle_median")),
                     rel(s["pytorch_median"], o.get("pytorch_median"))])
    if body:
        _print_rows(head, body)
        if apart:
            print("* this run's ratio range and the old one do not overlap (both over 2 or more repeats)")
    else:
        print("no (model, measure) in common")
    missing = sorted(set(old_rows) - {(s["model"], s["measure"]) for s in doc["summary"]})
    if missing:
        print("only in the old file: " + ", ".join(f"{a}/{b}" for a, b in missing))


def write_json(path: Path, doc: dict) -> None:
    """Atomically (temporary file + rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=",".join(ALL_MODELS), help="comma list of vit-b32, vit-b16, default, siglip-b16")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: os.cpu_count())")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per measure (load: a quarter, at least 3)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs per measure (load: 1)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="repeat the whole comparison N times (default 3); each repeat runs, per model, "
                         "the candle side then the PyTorch side")
    ap.add_argument("--out", help="write the whole document (machine, command, every repeat, summary) here "
                                  "(default: bench/<UTC date>-<cpu short name>.json)")
    ap.add_argument("--no-out", action="store_true", help="write no --out document")
    ap.add_argument("--compare", metavar="OLD.json", help="print this run's ratio medians beside those of an earlier --out file")
    ap.add_argument("--json-out", help="write the last repeat's results (merged with candle's, if any) in the "
                                       "single-run layout, plus the summary over all repeats, here")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--candle-json", help="read candle numbers from this `clipscope bench --json` file (not re-run: no interleaving)")
    g.add_argument("--candle-bin", help=f"run `<bin> bench` per model and repeat (default: {DEFAULT_CANDLE_BIN.relative_to(REPO)} if it exists)")
    g.add_argument("--no-candle", action="store_true", help="PyTorch numbers only")
    ap.add_argument("--one-model", help=argparse.SUPPRESS)  # internal: measure one model in this process
    ap.add_argument("--prepare", help=argparse.SUPPRESS)  # internal: write one random model folder
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(raw_argv)

    if args.prepare:
        prepare_random_model(args.prepare)
        return 0
    if args.one_model:
        doc = bench_one_model(args.one_model, args.threads, args.runs, args.warmup)
        text = json.dumps(doc, indent=1)
        if args.json_out:
            Path(args.json_out).write_text(text + "\n")
        else:
            print(text)
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown or not models:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(ALL_MODELS)}")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if args.no_out and args.out:
        ap.error("--out and --no-out exclude each other")
    old = None
    if args.compare:  # read it first: a bad path should not cost a whole run
        with open(args.compare) as f:
            old = json.load(f)

    started = utc_now()
    machine = machine_info()
    out_path = None if args.no_out else (Path(args.out) if args.out else default_out_path(machine, started))

    fixed_candle, binary, candle_source = None, None, "none"
    if args.candle_json:
        with open(args.candle_json) as f:
            fixed_candle = json.load(f)
        candle_source = f"file {args.candle_json}"
    elif not args.no_candle:
        b = Path(args.candle_bin) if args.candle_bin else DEFAULT_CANDLE_BIN
        if b.exists():
            binary = b
            mtime = datetime.datetime.fromtimestamp(b.stat().st_mtime, datetime.timezone.utc)
            candle_source = f"binary {b} (built {mtime:%Y-%m-%dT%H:%M:%SZ})"
        elif args.candle_bin:
            print(f"[bench_pytorch] {b} not found; showing PyTorch numbers only", file=sys.stderr)
        else:
            print(f"[bench_pytorch] no {DEFAULT_CANDLE_BIN.relative_to(REPO)}: PyTorch numbers only "
                  "(cargo build --release, or --candle-json FILE)", file=sys.stderr)
    if args.repeats < 3:
        print(f"[bench_pytorch] --repeats {args.repeats}: fewer than 3, the spread says little", file=sys.stderr)

    env, omp_note = pytorch_env()
    order = ("per repeat, per model: clipscope bench for that model, then PyTorch for that model"
             if binary else "per repeat, per model: PyTorch only (candle " + ("read from a file" if fixed_candle else "absent") + ")")
    doc = {
        "schema": "clipscope-bench-compare/1",
        "created_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_utc": None,
        "complete": False,
        "machine_line": machine_line(machine),
        "machine": machine,
        "command": shlex.join([Path(sys.executable).name, str(Path(__file__).resolve().relative_to(REPO))
                               if Path(__file__).resolve().is_relative_to(REPO) else __file__] + raw_argv),
        "argv": [sys.executable, __file__] + raw_argv,
        "cwd": os.getcwd(),
        "settings": {
            "models": models, "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "repeats": args.repeats, "candle_source": candle_source, "interleaved": binary is not None,
        },
        "notes": {
            "order": order,
            "ratio": "candle / PyTorch of the two sides' medians (median_ms; value_mb for peak_rss) "
                     "within one repeat; > 1: candle slower or larger",
            "summary": "per (model, measure): each repeat's ratio, their median, min and max; each side's "
                       "median (and min, max) of its per-repeat medians",
            "omp_wait_policy": omp_note,
        },
        "loadavg_start": loadavg(),
        "loadavg_end": None,
        "repeats": [],
        "summary": [],
        "errors": [],
    }
    if fixed_candle:
        machine["candle"] = candle_machine(fixed_candle)
    if out_path:
        print(f"[bench_pytorch] writing {out_path} (after every repeat)", file=sys.stderr)

    def step(rec: dict, side: str, name: str, fn):
        t0, t0_utc, load = time.perf_counter(), utc_now(), loadavg()
        d, err, cmd = fn()
        rec["steps"].append({"side": side, "model": name, "start_utc": t0_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "seconds": round(time.perf_counter() - t0, 2), "loadavg_before": load,
                             "command": shlex.join(cmd), "ok": err is None, "error": err})
        if err:
            print(f"[bench_pytorch] repeat {rec['repeat']}: {side} {name}: {err}", file=sys.stderr)
            doc["errors"].append({"repeat": rec["repeat"], "side": side, "model": name, "error": err})
        return d

    for rep in range(1, args.repeats + 1):
        print(f"[bench_pytorch] repeat {rep}/{args.repeats}", file=sys.stderr, flush=True)
        rec = {"repeat": rep, "steps": []}
        candle_docs, torch_docs = [], []
        for name in models:
            if binary:
                d = step(rec, "candle", name, lambda: run_candle(binary, [name], args.threads, args.runs, args.warmup))
                if d:
                    candle_docs.append(d)
            d = step(rec, "pytorch", name, lambda: run_pytorch_model(name, args.threads, args.runs, args.warmup, env))
            if d:
                torch_docs.append(d)
            if name in FLOOR_MODELS:  # the compute floor, measured in the same stretch of time
                f = step(rec, "floors", name, lambda: floors.run(model_dir(name) / "config.json", args.threads, env))
                if f:
                    rec.setdefault("floors", {})[name] = f
        rec["candle"] = merge_docs(candle_docs) if binary else fixed_candle
        rec["pytorch"] = merge_docs(torch_docs)
        rec["comparison"] = comparison(rec["candle"], rec["pytorch"])
        doc["repeats"].append(rec)
        if rec["candle"] and machine.get("candle") is None:
            machine["candle"] = candle_machine(rec["candle"])
        doc["summary"] = summarize(doc["repeats"])
        doc["floors"] = floors.summarize(doc["repeats"], doc["summary"])
        doc["loadavg_end"] = loadavg()
        if out_path:
            write_json(out_path, doc)

    doc["finished_utc"] = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["complete"] = True
    if old is not None:
        doc["compared_with"] = {"file": args.compare, "created_utc": old.get("created_utc"),
                                "machine_line": old.get("machine_line")}
    if out_path:
        write_json(out_path, doc)
    print_table(doc)
    if old is not None:
        print_compare(doc, old, args.compare)
    if out_path:
        print(f"\nwritten: {out_path}")

    if args.json_out:  # the single-run layout of before, from the last repeat with PyTorch numbers
        last = next((r for r in reversed(doc["repeats"]) if r.get("pytorch")), doc["repeats"][-1])
        legacy = dict(last["pytorch"] or {})
        legacy["candle"] = last["candle"]
        legacy["comparison"] = last["comparison"]
        legacy["repeat"] = last["repeat"]
        legacy["repeat_count"] = len(doc["repeats"])
        legacy["summary"] = doc["summary"]
        legacy["machine_line"] = doc["machine_line"]
        Path(args.json_out).write_text(json.dumps(legacy, indent=1) + "\n")
    return 1 if any(e["side"] == "pytorch" for e in doc["errors"]) else 0


if __name__ == "__main__":
    sys.exit(main())
