"""PyTorch/transformers side of the clipscope speed benchmark; compares with `clipscope bench`."""

# Usage (from the repository root, Python env with tools/requirements.txt):
#
#   python tools/bench_pytorch.py [--models vit-b32,vit-b16,default] [--threads N]
#       [--runs N] [--warmup N] [--json-out FILE] [--candle-json FILE | --candle-bin PATH | --no-candle]
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
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Never reach for the hub (model folders are local) and keep stderr quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
TOKENIZER_JSON = REPO / "assets" / "clip-tokenizer" / "tokenizer.json"
BENCH_MODELS = REPO / "target" / "bench-models"
DEFAULT_CANDLE_BIN = REPO / "target" / "release" / "clipscope"
ALL_MODELS = ("vit-b32", "vit-b16", "default")

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


def bench_one_model(name: str, threads: int, runs: int, warmup: int) -> dict:
    """All measures for one model, in this process. Returns a schema document."""
    import gc

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
# Orchestration, candle side, report
# --------------------------------------------------------------------------


def run_candle(binary: Path, models: list[str], threads: int, runs: int, warmup: int) -> dict | None:
    fd, out = tempfile.mkstemp(prefix="candle-bench-", suffix=".json")
    os.close(fd)
    cmd = [str(binary), "bench", "--json", out, "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warmup), "--models", ",".join(models)]
    print(f"[bench_pytorch] candle: {' '.join(cmd)}", file=sys.stderr)
    try:
        rc = subprocess.run(cmd, cwd=REPO).returncode
        if rc != 0:
            print(f"[bench_pytorch] candle bench exited with status {rc}; showing PyTorch numbers only", file=sys.stderr)
            return None
        with open(out) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"[bench_pytorch] candle bench failed ({e}); showing PyTorch numbers only", file=sys.stderr)
        return None
    finally:
        os.unlink(out)


def run_pytorch(models: list[str], threads: int, runs: int, warmup: int) -> dict:
    """Each model in a fresh subprocess; merged into one schema document."""
    for name in models:  # create missing random models outside the measuring processes
        if name in RANDOM_MODELS and not (model_dir(name) / "model.safetensors").exists():
            subprocess.run([sys.executable, __file__, "--prepare", name], check=True)
    merged = None
    for name in models:
        fd, out = tempfile.mkstemp(prefix=f"pytorch-bench-{name}-", suffix=".json")
        os.close(fd)
        try:
            cmd = [sys.executable, __file__, "--one-model", name, "--threads", str(threads),
                   "--runs", str(runs), "--warmup", str(warmup), "--json-out", out]
            print(f"[bench_pytorch] pytorch: {name}", file=sys.stderr)
            subprocess.run(cmd, check=True)
            with open(out) as f:
                doc = json.load(f)
        finally:
            os.unlink(out)
        if merged is None:
            merged = doc
        else:
            merged["results"] += doc["results"]
            merged["notes"].update(doc["notes"])
    return merged


def fmt_timing(r: dict | None) -> str:
    if r is None:
        return "-"
    return f"{r['median_ms']:.2f} ({r['p10_ms']:.2f}-{r['p90_ms']:.2f})"


def comparison(candle: dict | None, torch_doc: dict) -> list[dict]:
    """One row per (model, measure) found on either side, PyTorch order first."""
    index = {}
    for side, doc in (("pytorch", torch_doc), ("candle", candle)):
        for r in (doc or {}).get("results", []):
            index.setdefault((r["model"], r["measure"]), {})[side] = r
    rows = []
    for (model, measure), sides in index.items():
        c, p = sides.get("candle"), sides.get("pytorch")
        key = "value_mb" if measure == "peak_rss" else "median_ms"
        ratio = c[key] / p[key] if c and p and p.get(key) else None
        rows.append({"model": model, "measure": measure, "candle": c, "pytorch": p, "ratio_candle_over_pytorch": ratio})
    return rows


def print_table(rows: list[dict], candle: dict | None, torch_doc: dict) -> None:
    head = ["model", "measure", "candle median (p10-p90) ms", "pytorch median (p10-p90) ms", "candle/pytorch"]
    body = []
    for r in rows:
        if r["measure"] == "peak_rss":
            continue
        ratio = f"{r['ratio_candle_over_pytorch']:.3g}" if r["ratio_candle_over_pytorch"] else "-"
        body.append([r["model"], r["measure"], fmt_timing(r["candle"]), fmt_timing(r["pytorch"]), ratio])
    for r in rows:
        if r["measure"] != "peak_rss":
            continue
        c = f"{r['candle']['value_mb']:.0f} MB" if r["candle"] else "-"
        p = f"{r['pytorch']['value_mb']:.0f} MB" if r["pytorch"] else "-"
        ratio = f"{r['ratio_candle_over_pytorch']:.3g}" if r["ratio_candle_over_pytorch"] else "-"
        body.append([r["model"], "peak_rss", c, p, ratio])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    line = lambda cells: " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(f"cpu: {torch_doc['cpu']}")
    print(f"pytorch: threads {torch_doc['threads']}, " + ", ".join(f"{k} {v}" for k, v in torch_doc["versions"].items()))
    if candle:
        vers = ", ".join(f"{k} {v}" for k, v in candle.get("versions", {}).items())
        if "version" in candle:  # `clipscope bench` writes its own version as a string
            vers = ", ".join(x for x in (f"{candle.get('tool', 'candle')} {candle['version']}", vers) if x)
        print(f"candle:  threads {candle.get('threads')}" + (f", {vers}" if vers else ""))
        if candle.get("threads") != torch_doc["threads"]:
            print("WARNING: the two sides used different thread counts")
    else:
        print("candle:  no numbers")
    print()
    print(line(head))
    print("-+-".join("-" * w for w in widths))
    for b in body:
        print(line(b))
    base = {m: n.get("rss_after_imports_mb") for m, n in torch_doc.get("notes", {}).items()}
    if any(v is not None for v in base.values()):
        print()
        print("pytorch RSS after `import torch, transformers`, before any model: "
              + ", ".join(f"{m} {v:.0f} MB" for m, v in base.items() if v is not None))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=",".join(ALL_MODELS), help="comma list of vit-b32, vit-b16, default")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: os.cpu_count())")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per measure (load: a quarter, at least 3)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs per measure (load: 1)")
    ap.add_argument("--json-out", help="write the results (merged with candle's, if any) here")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--candle-json", help="read candle numbers from this `clipscope bench --json` file")
    g.add_argument("--candle-bin", help=f"run `<bin> bench` first (default: {DEFAULT_CANDLE_BIN.relative_to(REPO)} if it exists)")
    g.add_argument("--no-candle", action="store_true", help="PyTorch numbers only")
    ap.add_argument("--one-model", help=argparse.SUPPRESS)  # internal: measure one model in this process
    ap.add_argument("--prepare", help=argparse.SUPPRESS)  # internal: write one random model folder
    args = ap.parse_args(argv)

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

    candle = None
    if args.candle_json:
        with open(args.candle_json) as f:
            candle = json.load(f)
    elif not args.no_candle:
        binary = Path(args.candle_bin) if args.candle_bin else DEFAULT_CANDLE_BIN
        if binary.exists():
            candle = run_candle(binary, models, args.threads, args.runs, args.warmup)
        elif args.candle_bin:
            print(f"[bench_pytorch] {binary} not found; showing PyTorch numbers only", file=sys.stderr)
        else:
            print(f"[bench_pytorch] no {DEFAULT_CANDLE_BIN.relative_to(REPO)}: PyTorch numbers only "
                  "(cargo build --release, or --candle-json FILE)", file=sys.stderr)

    torch_doc = run_pytorch(models, args.threads, args.runs, args.warmup)
    rows = comparison(candle, torch_doc)
    print_table(rows, candle, torch_doc)
    if args.json_out:
        out = dict(torch_doc)
        out["candle"] = candle
        out["comparison"] = rows
        Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
