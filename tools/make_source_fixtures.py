#!/usr/bin/env python3
"""Generate tests/fixtures/sources/ (reference.safetensors + reference.json): reference
outputs of the dense-map sources of tools/map_sources.py (spec: tools/MAP_SOURCES.md) for
the two random parity models committed in tests/fixtures/parity/.

Run from the repository root (tools/requirements.txt environment; no hub access):

    python tools/make_source_fixtures.py

Deterministic (single-threaded torch, deterministic algorithms, fixed inputs): re-runs are
byte-identical.  All tensors are float32.  Names (m = tiny_gelu | tiny_quick_gelu, i = prompt
index as in tests/fixtures/parity/<m>/reference.json, P = g*g patches, D = projection_dim):

  m.tokens.<src>                 (1+P, D)    wide.png at the model's size, every source
                                             (raw maskclip sclip clearclip naclip layer:1
                                             layer:<L-1> layer:<L>), unnormalised, CLS row first
  m.tokens_2x.<src>              (1+4P, D)   wide.png at 2x the model's size (raw, clearclip)
  m.pos_embed_2x                 (1+4P, W)   interpolated position embeddings used at 2x
  m.naclip_bias                  (1+P, 1+P)  NACLIP's additive attention bias at the model's grid
  m.surgery.<src>.<i>            (1+P, T_i)  feature-surgery maps, wide.png, model size (raw, clearclip)
  m.surgery_weights.<src>        (K,)        the surgery weights w (from the raw CLS row)
  m.tiles.<src>.<img>.<i>        (T_i, rows, cols)  tiled cosine maps (raw, clearclip; wide, tall)
  m.tiles_surgery.raw.<img>.<i>  (T_i, rows, cols)  tiled surgery maps, raw source
  m.tiles_surgery_weights.raw.<img> (n_windows, K)  w per window

The script also checks: layer:L == raw (<= 1e-6), our re-written standard last block == raw,
raw == the parity fixture's image_tokens, text tokens == the parity fixture's, NACLIP's bias
(official construction) == closed form, interpolation == the spec's bicubic formula, surgery's
EOS columns == the official clip_feature_surgery, tiles of an image with L == c == the plain
centre map, and that the written files reload bit-exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import map_sources as ms  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PARITY = REPO_ROOT / "tests" / "fixtures" / "parity"
IMAGES = PARITY / "images"
OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "sources"
MODELS = ("tiny_gelu", "tiny_quick_gelu")
MAIN_IMAGE = "wide.png"
TILE_IMAGES = ("wide.png", "tall.png")
EXACT_IMAGE = {40: "exact40.png", 60: "exact60.png"}
RES_SOURCES = ("raw", "clearclip")
SURGERY_SOURCES = ("raw", "clearclip")
TILE_SOURCES = ("raw", "clearclip")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def check(name: str, a, b, tol: float, rel: bool = True) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert a.shape == b.shape, (name, a.shape, b.shape)
    d = maxdiff(a, b)
    lim = tol * (max(1.0, float(b.abs().max())) if rel else 1.0)
    assert d <= lim, (name, d, lim)
    return d


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


@torch.no_grad()
def run_model(name: str, ref: dict, log) -> dict:
    mdir = PARITY / name
    model = ms.load_model(mdir)
    geo = ms.vision_geometry(model)
    c, p, g, L = geo["image_size"], geo["patch_size"], geo["grid"], geo["num_layers"]
    parity = load_file(str(mdir / "reference.safetensors"))
    pmeta = json.loads((mdir / "reference.json").read_text(encoding="utf-8"))
    prompts = [dict(text=q["text"], token_ids=q["token_ids"]) for q in pmeta["prompts"]]
    pre = f"{name}."
    tensors = []  # (name, shape, meaning) for the JSON

    def put(key, t, meaning):
        t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
        ref[pre + key] = t
        tensors.append(dict(name=pre + key, shape=list(t.shape), meaning=meaning))

    # ---- text side (inputs to every map), cross-checked with the parity fixture
    txt, pooled = [], []
    for i, q in enumerate(prompts):
        t, e = ms.text_tokens(model, q["token_ids"])
        check(f"text_tokens.{i}", t, parity[f"text_tokens.{i}"], 1e-6)
        check(f"text_embeds.{i}", e, parity[f"text_embeds.{i}"], 1e-6)
        check(f"eos.{i}", e, t[-1], 1e-6)
        txt.append(t)
        pooled.append(e)
    pooled = torch.stack(pooled)

    # ---- every source at the model's size on wide.png
    pv = ms.preprocess_square(IMAGES / MAIN_IMAGE, c)
    assert torch.equal(pv, parity["pixel_values.wide"]), "pixel_values differ from the parity fixture"
    sources = list(ms.BASE_SOURCES)
    for n in (1, L - 1, L):
        if n >= 1 and f"layer:{n}" not in sources:
            sources.append(f"layer:{n}")
    toks = {}
    for src in sources:
        toks[src] = ms.image_tokens(model, pv, src)
        assert toks[src].shape == (1 + g * g, geo["projection_dim"]), (src, toks[src].shape)
        put(f"tokens.{src}", toks[src], f"{src} image tokens, {MAIN_IMAGE} at {c}x{c}, (1+P, D), CLS row first")
    d_layer = check("layer:L == raw", toks[f"layer:{L}"], toks["raw"], 1e-6, rel=False)
    d_vanilla = check("vanilla re-write == raw", ms.image_tokens(model, pv, "vanilla"), toks["raw"], 1e-6)
    d_parity = check("raw == parity image_tokens", toks["raw"], parity["image_tokens"], 1e-6)
    check("raw CLS == parity image_embeds", toks["raw"][0], parity["image_embeds"], 1e-6)
    for src in sources:  # every modified source must really differ from raw
        if src not in ("raw", f"layer:{L}"):
            assert maxdiff(toks[src], toks["raw"]) > 1e-3, src
    log(f"  layer:{L} vs raw {d_layer:.2g}, re-written block vs raw {d_vanilla:.2g}, raw vs parity {d_parity:.2g}")

    # ---- NACLIP bias: official construction vs closed form
    bias = ms.naclip_bias_official(g, g)
    check("naclip bias", bias, ms.naclip_bias(g, g), 1e-6, rel=False)
    put("naclip_bias", bias, f"NACLIP additive attention bias, grid {g}x{g}, sigma {ms.NACLIP_SIGMA}, CLS row/col 0")

    # ---- 2x resolution
    c2 = 2 * c
    pv2 = ms.preprocess_square(IMAGES / MAIN_IMAGE, c2)
    pos2 = ms.interpolated_position_embeddings(model, c2, c2)
    pos = model.vision_model.embeddings.position_embedding.weight.detach()
    mine = ms.bicubic_resize_reference(pos[1:].reshape(g, g, -1).numpy(), 2 * g, 2 * g).reshape(4 * g * g, -1)
    d_interp = check("bicubic spec", pos2[1:], torch.from_numpy(mine), 1e-6)
    assert torch.equal(pos2[0], pos[0])
    assert torch.equal(ms.interpolated_position_embeddings(model, c, c), pos), "identity at native size"
    put("pos_embed_2x", pos2, f"position embeddings interpolated to {2 * g}x{2 * g} (row 0 = CLS, unchanged)")
    for src in RES_SOURCES:
        t2 = ms.image_tokens(model, pv2, src)
        assert t2.shape == (1 + 4 * g * g, geo["projection_dim"])
        put(f"tokens_2x.{src}", t2, f"{src} image tokens, {MAIN_IMAGE} at {c2}x{c2}, (1+4P, D)")
    log(f"  2x: {c2}px grid {2 * g}, bicubic spec vs torch {d_interp:.2g}")

    # ---- surgery (wide.png, model size), w from the raw CLS row
    surgery_meta = {}
    for src in SURGERY_SOURCES:
        maps, w = ms.surgery_maps(toks[src], toks["raw"][0], txt, pooled)
        feats = ms.l2n(toks[src]).clone()
        feats[0] = ms.l2n(toks["raw"][0])  # CLIP Surgery: CLS row from the original path
        official = ms.clip_feature_surgery_official(feats[None], ms.l2n(pooled))[0]  # (N, K)
        start = 0 if src == "raw" else 1
        for i, m in enumerate(maps):
            assert m.shape == (1 + g * g, len(prompts[i]["token_ids"]))
            check(f"surgery EOS {src}.{i}", m[start:, -1], official[start:, i], 1e-6, rel=False)
            put(f"surgery.{src}.{i}", m, f"feature-surgery maps, {src} tokens, prompt {i}, (1+P, T_{i})")
        put(f"surgery_weights.{src}", w, "surgery weights w_j = K softmax_j(2 cos(raw CLS, e_j))")
        if src != SURGERY_SOURCES[0]:
            assert torch.equal(w, ref[pre + f"surgery_weights.{SURGERY_SOURCES[0]}"])
        surgery_meta[src] = dict(image=MAIN_IMAGE, resolution=c, weights_from="raw CLS row of the same pixels")

    # ---- tiles
    tiles_meta = {}
    for img in TILE_IMAGES:
        stem = Path(img).stem
        layout = None
        for src in TILE_SOURCES:
            maps, lay, _ = ms.tiled_maps(model, IMAGES / img, src, txt)
            assert layout is None or layout == lay
            layout = lay
            for i, m in enumerate(maps):
                put(f"tiles.{src}.{stem}.{i}", m, f"tiled cosine maps, {src}, {img}, prompt {i}, (T_{i}, rows, cols)")
        maps, lay, wts = ms.tiled_maps(model, IMAGES / img, "raw", txt, pooled=pooled, surgery=True)
        assert lay == layout
        for i, m in enumerate(maps):
            put(f"tiles_surgery.raw.{stem}.{i}", m, f"tiled surgery maps, raw, {img}, prompt {i}, (T_{i}, rows, cols)")
        put(f"tiles_surgery_weights.raw.{stem}", wts, "surgery weights w per window (n_windows, K)")
        tiles_meta[img] = layout
        log(f"  tiles {img}: resized {layout['resized']}, offsets {layout['offsets']}, map {layout['map_rows']}x{layout['map_cols']}")

    # ---- self-check: an image whose long side equals c tiles into the plain centre map
    exact = IMAGES / EXACT_IMAGE[c]
    pve = ms.preprocess_square(exact, c)
    for src in TILE_SOURCES:
        maps, lay, _ = ms.tiled_maps(model, exact, src, txt)
        assert lay["offsets"] == [0] and (lay["map_rows"], lay["map_cols"]) == (g, g)
        te = ms.image_tokens(model, pve, src)
        for i, t in enumerate(txt):
            plain = ms.cosine_maps(te, t)[1:].T.reshape(-1, g, g)
            assert torch.equal(torch.from_numpy(maps[i]), plain), f"tiles != plain ({src}, {exact.name}, {i})"
        if src == "raw":
            maps, _, _ = ms.tiled_maps(model, exact, src, txt, pooled=pooled, surgery=True)
            sm, _ = ms.surgery_maps(te, te[0], txt, pooled)
            for i in range(len(txt)):
                assert torch.equal(torch.from_numpy(maps[i]), sm[i][1:].T.reshape(-1, g, g)), f"tiled surgery ({i})"
    log(f"  tiles of {exact.name} (L == c) == plain centre maps (bit-exact): ok")

    return dict(
        model_dir=rel(mdir),
        vision=geo,
        prompts=prompts,
        num_prompts=len(prompts),
        main_image=MAIN_IMAGE,
        sources=sources,
        resolution=c,
        resolution_2x=c2,
        sources_2x=list(RES_SOURCES),
        naclip_sigma=ms.NACLIP_SIGMA,
        surgery=surgery_meta,
        tiles=tiles_meta,
        tile_sources=list(TILE_SOURCES),
        tensors=tensors,
    )


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import transformers

    ref: dict[str, torch.Tensor] = {}
    meta = dict(
        description=(
            "Reference outputs of clipscope's dense-map sources (tools/map_sources.py, spec "
            "tools/MAP_SOURCES.md) for the random parity models of tests/fixtures/parity. "
            "All tensors float32 in reference.safetensors; image tokens unnormalised, CLS row "
            "first, patches row-major; maps are cosines (or surgery scores)."
        ),
        generator="tools/make_source_fixtures.py",
        images_dir=rel(IMAGES),
        image_processor_backend="pil",
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
        models={},
    )
    for name in MODELS:
        print(f"== {name}")
        meta["models"][name] = run_model(name, ref, lambda s: print(s))

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    st = OUT_DIR / "reference.safetensors"
    js = OUT_DIR / "reference.json"
    save_file(ref, str(st), metadata={"format": "pt"})
    with open(js, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    back = load_file(str(st))
    assert set(back) == set(ref) and all(torch.equal(back[k], ref[k]) for k in ref)
    assert all(v.dtype == torch.float32 for v in back.values())
    size = st.stat().st_size + js.stat().st_size
    print(f"== wrote {rel(st)} ({st.stat().st_size} bytes, {len(ref)} tensors), {rel(js)} ({js.stat().st_size} bytes)")
    assert size < 1_000_000, size
    return 0


if __name__ == "__main__":
    sys.exit(main())
