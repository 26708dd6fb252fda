#!/usr/bin/env python3
"""PyTorch reference for clipscope's dense-map *sources* (see tools/MAP_SOURCES.md).

A map source decides which image tokens the per-token dense maps are computed
from.  Every source returns image tokens of shape (1 + P, D), CLS row first,
patches in row-major order, in the joint (projected) space and *unnormalised*;
the map of a text token is the cosine of every row with that token's projected
text embedding.

Sources (the exact maths, with file/line citations of the official code, is in
tools/MAP_SOURCES.md):

    raw        last_hidden_state -> post_layernorm -> visual_projection (DCSM's tokens)
    layer:N    hidden state after encoder block N (1-based) -> post_layernorm -> visual_projection
    maskclip   last block: x + out_proj(v_proj(ln1 x)), then + FFN          (MaskCLIP, ECCV'22)
    sclip      last block: attention softmax(q q^T s) + softmax(k k^T s), residual + FFN kept (SCLIP)
    clearclip  last block: out_proj(softmax(q q^T s) v) only: no residual, no FFN (ClearCLIP)
    naclip     last block: out_proj(softmax(k k^T s + Gaussian(sigma=5)) v) only (NACLIP)

plus two combinators applied to the maps:

    surgery_maps()   CLIP Surgery's feature surgery (clip_feature_surgery) on per-token maps
    tiled_maps()     sliding c x c windows along the long side of the image, averaged per pixel

Everything runs on a transformers ``CLIPModel`` (eager attention, float32) by
re-using its own modules (layer norms, projections, MLP) and re-writing only the
last encoder block; ``raw`` and ``layer:N`` use transformers' own encoder layers.
Position embeddings always go through transformers'
``CLIPVisionEmbeddings.interpolate_pos_encoding`` (``interpolate_pos_encoding=True``),
which is the identity at the model's own square size.

Only torch, numpy, Pillow and transformers are needed.  No model hub access.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

try:  # transformers >= 5: the PIL backend has its own class name
    from transformers import CLIPImageProcessorPil as PilCLIPImageProcessor
except ImportError:  # transformers 4.x: CLIPImageProcessor is PIL-based
    from transformers import CLIPImageProcessor as PilCLIPImageProcessor

NACLIP_SIGMA = 5.0  # NACLIP naclip.py NACLIP.__init__(gaussian_std=5.)
SURGERY_TEMPERATURE = 2.0  # CLIP_Surgery clip/clip.py clip_feature_surgery: (prob * 2).softmax(-1)
BASE_SOURCES = ("raw", "maskclip", "sclip", "clearclip", "naclip")


# --------------------------------------------------------------------------- model
def load_model(model_dir: str | Path):
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def vision_geometry(model) -> dict:
    vc = model.config.vision_config
    return dict(
        image_size=vc.image_size,
        patch_size=vc.patch_size,
        grid=vc.image_size // vc.patch_size,
        num_layers=vc.num_hidden_layers,
        hidden_size=vc.hidden_size,
        num_heads=vc.num_attention_heads,
        head_dim=vc.hidden_size // vc.num_attention_heads,
        projection_dim=model.config.projection_dim,
    )


def parse_source(source: str, num_layers: int):
    """-> (kind, n): kind in BASE_SOURCES or "layer"; n = block index for layer:N."""
    if source in BASE_SOURCES or source == "vanilla":  # "vanilla": internal, re-written raw
        return source, None
    if source.startswith("layer:"):
        n = int(source.split(":", 1)[1])
        if not 1 <= n <= num_layers:
            raise ValueError(f"{source}: N must be in 1..{num_layers}")
        return "layer", n
    raise ValueError(f"unknown map source {source!r}")


# --------------------------------------------------------------------------- preprocessing
def make_processor(size: int, center_crop: bool = True):
    """CLIPImageProcessor, PIL backend (as tools/make_parity_fixtures.py), shortest_edge = crop = size."""
    return PilCLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=center_crop,
    )


def resize_geometry(w: int, h: int, s: int):
    """transformers get_resize_output_image_size(default_to_square=False) + center_crop arithmetic."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long / short)
    rw, rh = (new_short, new_long) if w <= h else (new_long, new_short)
    return (rw, rh), ((rw - s) // 2, (rh - s) // 2, s, s)


def _explicit_pixels(img: Image.Image, rw: int, rh: int, mean, std) -> np.ndarray:
    """PIL bicubic on u8 -> f32(f64(u8)/255) -> (x - mean)/std in f32; (3, rh, rw)."""
    r = np.asarray(img) if img.size == (rw, rh) else np.asarray(img.resize((rw, rh), resample=Image.Resampling.BICUBIC))
    x = (r.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def preprocess_square(path: str | Path, size: int) -> torch.Tensor:
    """Processor output (3, size, size) float32 (resize shortest edge to `size`, centre crop)."""
    img = Image.open(path).convert("RGB")
    proc = make_processor(size)
    pv = proc(images=img, return_tensors="np")["pixel_values"][0]
    (rw, rh), (cx, cy, cw, ch) = resize_geometry(*img.size, size)
    mine = _explicit_pixels(img, rw, rh, proc.image_mean, proc.image_std)[:, cy : cy + ch, cx : cx + cw]
    assert pv.shape == (3, size, size) and np.array_equal(mine, pv), path
    return torch.from_numpy(np.ascontiguousarray(pv))


def preprocess_resized(path: str | Path, c: int) -> tuple[torch.Tensor, dict]:
    """Tiles: the processor's resize rule (shortest side -> c, long = floor(c*long/short),
    Pillow bicubic) and its rescale/normalise, no crop.  -> ((3, H, W) float32, geometry)."""
    return preprocess_resized_image(Image.open(path).convert("RGB"), c, label=path)


def preprocess_resized_image(img: Image.Image, c: int, check: bool = True, label=None) -> tuple[torch.Tensor, dict]:
    """preprocess_resized on an image already decoded to RGB (e.g. in memory).  check=True
    (what preprocess_resized does) also re-computes the pixels explicitly and asserts they
    equal the processor's; check=False runs the processor alone (tools/bench_pytorch.py)."""
    proc = make_processor(c, center_crop=False)
    pv = proc(images=img, return_tensors="np")["pixel_values"][0]
    (rw, rh), _ = resize_geometry(*img.size, c)
    if check:
        mine = _explicit_pixels(img, rw, rh, proc.image_mean, proc.image_std)
        assert pv.shape == (3, rh, rw) and np.array_equal(mine, pv), (label, pv.shape, (rh, rw))
    else:
        assert pv.shape == (3, rh, rw), (label, pv.shape, (rh, rw))
    return torch.from_numpy(np.ascontiguousarray(pv)), dict(original=list(img.size), resized=[rw, rh])


# --------------------------------------------------------------------------- position embeddings
def interpolated_position_embeddings(model, height: int, width: int) -> torch.Tensor:
    """(1 + gh*gw, hidden): transformers' own CLIPVisionEmbeddings.interpolate_pos_encoding."""
    emb = model.vision_model.embeddings
    n = (height // emb.patch_size) * (width // emb.patch_size)
    dummy = torch.zeros(1, 1 + n, emb.embed_dim)
    return emb.interpolate_pos_encoding(dummy, height, width)[0]


def _torch_bicubic_weights(t: float, a: float = -0.75):
    def c1(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return (c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t))


def bicubic_resize_reference(grid: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Spec of torch.nn.functional.interpolate(mode="bicubic", align_corners=False, size=...)
    in float64 (A = -0.75, src = (dst + 0.5) * in/out - 0.5, taps floor(src)-1..+2 clamped to
    the border).  grid: (H, W, C) -> (out_h, out_w, C).  Used to check MAP_SOURCES.md."""
    in_h, in_w = grid.shape[:2]

    def taps(n_in, n_out):
        scale = n_in / n_out
        out = []
        for d in range(n_out):
            src = (d + 0.5) * scale - 0.5
            i0 = math.floor(src)
            w = _torch_bicubic_weights(src - i0)
            out.append([(min(max(i0 - 1 + j, 0), n_in - 1), w[j]) for j in range(4)])
        return out

    ty, tx = taps(in_h, out_h), taps(in_w, out_w)
    g = grid.astype(np.float64)
    res = np.zeros((out_h, out_w, grid.shape[2]))
    for oy, ry in enumerate(ty):
        for ox, rx in enumerate(tx):
            acc = 0.0
            for iy, wy in ry:
                for ix, wx in rx:
                    acc = acc + wy * wx * g[iy, ix]
            res[oy, ox] = acc
    return res


# --------------------------------------------------------------------------- vision tower
@torch.no_grad()
def _trunk(model, pixel_values: torch.Tensor, upto: int | None = None):
    """-> list of hidden states [h_0 (after pre_layrnorm), h_1, ..., h_upto], each (N, hidden):
    h_n = output of encoder block n (transformers' CLIPEncoderLayer, unchanged).
    upto defaults to L - 1 (everything the re-written last block needs)."""
    vm = model.vision_model
    layers = vm.encoder.layers
    upto = len(layers) - 1 if upto is None else upto
    h = vm.embeddings(pixel_values[None], interpolate_pos_encoding=True)
    h = vm.pre_layrnorm(h)
    states = [h]
    for layer in layers[:upto]:
        h = layer(h, None)
        states.append(h)
    return [s[0] for s in states]


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(N, D) -> (H, N, d): head h = columns [h*d, (h+1)*d) (transformers view/transpose)."""
    n, d_model = x.shape
    return x.view(n, num_heads, d_model // num_heads).transpose(0, 1)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(H, N, d) -> (N, H*d), heads concatenated in order."""
    h, n, d = x.shape
    return x.transpose(0, 1).reshape(n, h * d)


def naclip_bias_official(rows: int, cols: int, sigma: float = NACLIP_SIGMA) -> torch.Tensor:
    """NACLIP clip/model.py VisionTransformer.gaussian_window + get_attention_addition
    (adjust_for_cls=True), re-done step by step: (1 + rows*cols, 1 + rows*cols) float32."""
    constant = 1 / (sigma * math.sqrt(2))
    ks = []
    for dim in (2 * rows - 1, 2 * cols - 1):  # window_size = [side * 2 - 1 for side in n_patches]
        start = -(dim - 1) / 2.0
        ks.append(torch.linspace(start * constant, (start + (dim - 1)) * constant, steps=dim, dtype=torch.float))
    window = torch.exp(-(torch.stack(torch.meshgrid(*ks, indexing="ij")) ** 2).sum(0))
    m = torch.einsum("ij,kl->ijkl", torch.eye(rows), torch.eye(cols)).permute((0, 3, 1, 2)).contiguous()
    out = torch.nn.functional.conv2d(
        m.view(-1, rows, cols).unsqueeze(1), window.unsqueeze(0).unsqueeze(1), padding="same"
    ).squeeze(1)
    out = out.view(rows * cols, rows * cols)
    v_adjusted = torch.vstack([torch.zeros((1, rows * cols)), out])
    return torch.hstack([torch.zeros((rows * cols + 1, 1)), v_adjusted])


def naclip_bias(rows: int, cols: int, sigma: float = NACLIP_SIGMA) -> torch.Tensor:
    """Closed form of the same matrix (what MAP_SOURCES.md specifies): 0 on CLS row/column,
    exp(-((ra-rb)^2 + (ca-cb)^2) / (2 sigma^2)) between patches a=(ra,ca), b=(rb,cb)."""
    r = torch.arange(rows * cols) // cols
    c = torch.arange(rows * cols) % cols
    d2 = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
    g = torch.exp(-d2.double() / (2 * sigma * sigma)).float()
    out = torch.zeros(1 + rows * cols, 1 + rows * cols)
    out[1:, 1:] = g
    return out


@torch.no_grad()
def last_block(layer, x: torch.Tensor, kind: str, grid: tuple[int, int]) -> torch.Tensor:
    """The last encoder block, replaced per method.  x: (N, hidden) = h_{L-1}.  -> (N, hidden)."""
    attn = layer.self_attn
    y = layer.layer_norm1(x)
    if kind == "maskclip":
        # MaskCLIP vit.py TransformerEncoderLayer.forward(return_qkv=True):
        #   v = out_proj(v_proj(ln1 x)); v += x; v = ffn(norm2(v), identity=v)
        h = x + attn.out_proj(attn.v_proj(y))
        return h + layer.mlp(layer.layer_norm2(h))
    q = _heads(attn.q_proj(y), attn.num_heads)
    k = _heads(attn.k_proj(y), attn.num_heads)
    v = _heads(attn.v_proj(y), attn.num_heads)
    s = attn.scale  # head_dim ** -0.5
    sm = lambda z: torch.softmax(z, dim=-1)  # noqa: E731  (over keys, the last axis)
    if kind == "vanilla":
        a = sm(torch.matmul(q, k.transpose(1, 2)) * s)
    elif kind == "sclip":
        a = sm(torch.matmul(q, q.transpose(1, 2)) * s) + sm(torch.matmul(k, k.transpose(1, 2)) * s)
    elif kind == "clearclip":
        a = sm(torch.matmul(q, q.transpose(1, 2)) * s)
    elif kind == "naclip":
        omega = naclip_bias_official(*grid)
        a = sm(torch.matmul(k, k.transpose(1, 2)) * s + omega[None])
    else:
        raise ValueError(kind)
    out = attn.out_proj(_merge(torch.matmul(a, v)))
    if kind in ("clearclip", "naclip"):  # no residual, no FFN
        return out
    h = x + out  # vanilla, sclip: residual and FFN kept
    return h + layer.mlp(layer.layer_norm2(h))


@torch.no_grad()
def project(model, h: torch.Tensor) -> torch.Tensor:
    """post_layernorm (ln_post) then visual_projection (no bias), every row."""
    return model.visual_projection(model.vision_model.post_layernorm(h))


@torch.no_grad()
def image_tokens(model, pixel_values: torch.Tensor, source: str) -> torch.Tensor:
    """(3, H, W) processor output -> (1 + P, D) unnormalised joint-space tokens, CLS row first."""
    geo = vision_geometry(model)
    kind, n = parse_source(source, geo["num_layers"])
    grid = (pixel_values.shape[1] // geo["patch_size"], pixel_values.shape[2] // geo["patch_size"])
    if kind == "raw":
        out = model.vision_model(pixel_values=pixel_values[None], interpolate_pos_encoding=True)
        return project(model, out.last_hidden_state[0])
    if kind == "layer":  # transformers' own blocks 1..N
        return project(model, _trunk(model, pixel_values, n)[n])
    states = _trunk(model, pixel_values)
    h = last_block(model.vision_model.encoder.layers[-1], states[-1], kind, grid)
    return project(model, h)


# --------------------------------------------------------------------------- text
@torch.no_grad()
def text_tokens(model, token_ids: list[int]):
    """-> (tokens (T, D) = text_projection(last_hidden_state), pooled (D,) = get_text_features)."""
    ids = torch.tensor([token_ids], dtype=torch.long)
    toks = model.text_projection(model.text_model(input_ids=ids).last_hidden_state)[0]
    pooled = model.get_text_features(input_ids=ids).pooler_output[0]
    return toks, pooled


def l2n(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def cosine_maps(img_tokens: torch.Tensor, txt_tokens: torch.Tensor) -> torch.Tensor:
    """(N, D), (T, D) -> (N, T): row-normalised image tokens @ row-normalised text tokens^T."""
    return l2n(img_tokens) @ l2n(txt_tokens).T


# --------------------------------------------------------------------------- surgery
def surgery_weights(cls_token: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """w_j = softmax_j(2 * cos(cls, e_j)) / mean_j(softmax), j over the K prompts; (K,)."""
    prob = torch.softmax(SURGERY_TEMPERATURE * (l2n(cls_token) @ l2n(pooled).T), dim=-1)
    return prob / prob.mean(-1, keepdim=True)


def surgery_maps(img_tokens: torch.Tensor, weight_cls: torch.Tensor, txt_tokens: list, pooled: torch.Tensor):
    """Feature surgery on per-token maps (MAP_SOURCES.md, "surgery").
    img_tokens (N, D) the source's tokens; weight_cls (D,) the *raw* CLS token of the same
    pixels (CLIP Surgery keeps the original path's CLS, clip_surgery_model.py line 349);
    txt_tokens: list of (T_p, D); pooled (K, D) the prompts' EOS embeddings.
    map_p[i, k] = w_p * cos(x_i, t_pk) - (1/K) sum_j w_j cos(x_i, e_j).  -> ([(N, T_p)], w)."""
    w = surgery_weights(weight_cls, pooled)
    n = l2n(img_tokens)
    redundant = (n @ l2n(pooled).T * w[None]).mean(-1, keepdim=True)  # (N, 1)
    return [w[p] * (n @ l2n(t).T) - redundant for p, t in enumerate(txt_tokens)], w


def clip_feature_surgery_official(image_features, text_features, t=2):
    """Literal copy of the maths of CLIP_Surgery clip/clip.py clip_feature_surgery
    (redundant_feats=None branch); used only to check surgery_maps.  (b, n_i, c), (n_t, c)."""
    prob = image_features[:, :1, :] @ text_features.t()
    prob = (prob * 2).softmax(-1)
    w = prob / prob.mean(-1, keepdim=True)
    b, n_t, n_i, c = image_features.shape[0], text_features.shape[0], image_features.shape[1], image_features.shape[2]
    feats = image_features.reshape(b, n_i, 1, c) * text_features.reshape(1, 1, n_t, c)
    feats *= w.reshape(1, 1, n_t, 1)
    redundant_feats = feats.mean(2, keepdim=True)
    feats = feats - redundant_feats
    return feats.sum(-1)


# --------------------------------------------------------------------------- tiles
def tile_layout(long_side: int, c: int) -> list[int]:
    """Window offsets o_k = min(k*s, L - c), s = c // 2, n = 1 if L == c else ceil((L-c)/s) + 1."""
    assert long_side >= c
    s = c // 2
    n = 1 if long_side == c else -(-(long_side - c) // s) + 1
    offs = [min(k * s, long_side - c) for k in range(n)]
    # same as mmseg slide_inference: grids = max(L - c + s - 1, 0) // s + 1, x1 = max(min(k s + c, L) - c, 0)
    assert n == max(long_side - c + s - 1, 0) // s + 1
    assert offs == [max(min(k * s + c, long_side) - c, 0) for k in range(n)]
    return offs


def combine_windows(window_maps: list[np.ndarray], offsets: list[int], long_side: int, p: int) -> np.ndarray:
    """window_maps: per window (T, g, g) maps with axis 2 = the long axis.  -> (T, g, G),
    G = ceil(L / p): pixel x of the long axis takes the value of the window patch containing it,
    averaged over covering windows; cell J = mean over pixels [J p, min((J+1) p, L)).  float64."""
    t, g, g2 = window_maps[0].shape
    assert g == g2
    acc = np.zeros((t, g, long_side))
    cnt = np.zeros(long_side)
    for m, o in zip(window_maps, offsets):
        cols = np.arange(g * p) // p  # pixel -> patch column inside the window
        acc[:, :, o : o + g * p] += m.astype(np.float64)[:, :, cols]
        cnt[o : o + g * p] += 1
    assert (cnt > 0).all()
    per_pixel = acc / cnt
    big_g = -(-long_side // p)
    return np.stack([per_pixel[:, :, j * p : min((j + 1) * p, long_side)].mean(-1) for j in range(big_g)], axis=-1)


@torch.no_grad()
def tiled_maps(model, path, source: str, txt_tokens: list, pooled=None, surgery=False):
    """-> (list over prompts of (T_p, rows, cols) float32 maps, layout dict, surgery weights
    (n_windows, K) or None).
    Long axis = x for a wide image (maps (T, g, G)), y for a tall one (maps (T, G, g))."""
    geo = vision_geometry(model)
    c, p = geo["image_size"], geo["patch_size"]
    assert c % p == 0
    pv, info = preprocess_resized(path, c)
    out, layout, weights = tiled_maps_pixels(model, pv, source, txt_tokens, pooled=pooled, surgery=surgery)
    return out, dict(info, **layout), weights


@torch.no_grad()
def tiled_maps_pixels(model, pv: torch.Tensor, source: str, txt_tokens: list, pooled=None, surgery=False):
    """tiled_maps from steps 2-4 of MAP_SOURCES.md section 9 on pixels already resized and
    normalised (pv: (3, H, W), shortest side = the model size, e.g. preprocess_resized_image).
    -> (maps, layout dict without original/resized, surgery weights or None)."""
    geo = vision_geometry(model)
    c, p = geo["image_size"], geo["patch_size"]
    assert c % p == 0
    _, hh, ww = pv.shape
    assert min(hh, ww) == c, (pv.shape, c)
    tall = hh > ww
    long_side = hh if tall else ww
    offsets = tile_layout(long_side, c)
    per_prompt = [[] for _ in txt_tokens]
    weights = []  # surgery: (n_windows, K) weights w, one row per window
    for o in offsets:
        win = pv[:, o : o + c, :] if tall else pv[:, :, o : o + c]
        win = win.contiguous()
        toks = image_tokens(model, win, source)
        if surgery:
            raw_cls = toks[0] if source == "raw" else image_tokens(model, win, "raw")[0]
            maps, w = surgery_maps(toks, raw_cls, txt_tokens, pooled)
            weights.append(w)
        else:
            maps = [cosine_maps(toks, t) for t in txt_tokens]
        g = c // p
        for i, m in enumerate(maps):
            m = m[1:].T.reshape(-1, g, g).numpy()  # (T, g rows, g cols), patches row-major
            per_prompt[i].append(m.transpose(0, 2, 1) if tall else m)  # put the long axis last
    out = []
    for wins in per_prompt:
        full = combine_windows(wins, offsets, long_side, p)
        out.append(np.ascontiguousarray((full.transpose(0, 2, 1) if tall else full).astype(np.float32)))
    layout = dict(
        long_axis="y" if tall else "x",
        long_side=long_side,
        window=c,
        stride=c // 2,
        offsets=offsets,
        map_rows=int(out[0].shape[1]),
        map_cols=int(out[0].shape[2]),
    )
    return out, layout, (torch.stack(weights) if surgery else None)
