#!/usr/bin/env python3
"""Independent PyTorch re-implementation of SmartCLIP (reference for clipscope).

Purpose
-------
SmartCLIP ("SmartCLIP: Modular Vision-language Alignment with Identification
Guarantees", Xie, Kong et al., CVPR'25; code ``Mid-Push/SmartCLIP``, weights
``Shaoan/SmartCLIP`` ``smartclip_b16.pt`` / ``smartclip_l14.pt``) is an OpenAI
CLIP in Long-CLIP form plus a small *mask network* that reads a caption and
selects which dimensions of the image embedding take part in the comparison.
clipscope ports it to candle; this module is the Python yardstick the Rust port
is tested against (see ``tools/make_smartclip_fixtures.py`` and
``tools/convert_smartclip_checkpoint.py``).

Written from a description of the method, not copied from the authors' code.
The details were then checked by reading the reference code as vendored
(unchanged in the parts used here) in ``reyuyu/SAID`` at commit 729c5a6:
``model/model_longclip.py``, ``model/longclip.py``, ``train/train.py``.  (The
``Mid-Push/SmartCLIP`` repository itself could not be mirrored here; README and
training script are identical to it.)  Line numbers below refer to that copy.

Backbone (model_longclip.py ``CLIP``, ``VisionTransformer``)
-----------------------------------------------------------
* Vision: OpenAI ViT.  conv1 (no bias) -> prepend ``class_embedding`` ->
  + ``positional_embedding`` -> ``ln_pre`` -> pre-LN blocks -> ``ln_post`` of
  the CLS token -> ``@ proj`` (width x embed).  The *unnormalised* result is
  what SmartCLIP masks.  Heads = width // 64; MLP 4x with QuickGELU; LayerNorm
  eps 1e-5 everywhere (torch default).
* Text: context 248 (l.309).  Token embedding + position table where rows
  0..19 come from ``positional_embedding`` and rows 20..247 from
  ``positional_embedding_res`` (``mask1``/``mask2``, l.354-357, applied at
  l.428-429 as ``pos * mask1 + pos_res * mask2``, i.e. a row selection).
  Causal blocks (l.390), ``ln_final`` on every position, pooled at
  ``ids.argmax(-1)`` (l.438) and ``@ text_projection``.  Long-CLIP's
  tokenizer pads with 0 (longclip.py ``tokenize``: ``torch.zeros`` then the
  tokens), so argmax finds the first EOT (49407, the largest id).

Mask network (model_longclip.py ``MaskNetwork`` l.265-287, ``AttentionPool`` l.251-258)
--------------------------------------------------------------------------------------
* Input: ``ln_final`` output at *all* 248 positions (padding included, no
  key-padding mask), detached (l.479).
* One OpenAI ``ResidualAttentionBlock`` of width = text width, heads = text
  width // 64 (``transformer_heads``, l.359 and l.577), attn_mask None, i.e.
  *non-causal*; pre-LN, MLP 4x QuickGELU.
* ``AttentionPool``: ``Linear(width, 1)`` score per position, softmax over the
  positions, weighted sum of the block outputs -> logits of size width.  There
  is no output projection: the logits ARE the pooled block output, so the mask
  width equals the text width, which must equal the embedding dim.
* ``sigmoid`` -> hard mask ``(s >= 0.5)`` with straight-through gradient
  ``hard - s.detach() + s`` (l.481).  Training default is the hard mask
  (train.py l.284 ``--soft_mask`` default 0; its help text says the opposite,
  but l.482 uses ``soft_mask if soft else hard_mask``).

Score (model_longclip.py ``compute_smart_image_feature`` l.462-471, ``forward``)
--------------------------------------------------------------------------------
``S[i, j] = < (v_i * m_j) / ||v_i * m_j||,  t_j / ||t_j|| >`` with v the
unnormalised projected image embedding, m_j caption j's mask and t_j the
unnormalised pooled projected text embedding.  The text embedding is NOT
masked; the image is masked first and normalised after; no epsilon in either
normalisation (an all-zero mask gives NaN, as in the reference).

Losses (model_longclip.py ``CLIP.forward`` l.473-526, train.py l.109-111)
--------------------------------------------------------------------------
For a batch of B paired (image i, caption i) on one process (rank 0):
* ``loss_sparse = mean(|m|)`` over (B, width) of the mask actually used (the
  straight-through hard mask by default).
* ``loss_sidm``: logits ``100 * S`` (B images x B captions, row i = image i,
  column j = caption j with its own mask), cross-entropy over the captions,
  target j = i.
* ``loss_dism``: row i = caption i (its own mask on every image), column k =
  image k, i.e. ``100 * S.T``; cross-entropy over the images, target k = i.
* The scale is a fixed 100 (``logit_scale`` is set to 4.6052 = ln 100 by the
  trainer, l.40 / l.280, but the loss never reads it).
* ``total = lambda_sparse * loss_sparse + lambda_align * (loss_sidm +
  loss_dism)`` with defaults 2 and 10 (l.282-283; train_b16.sh passes
  ``--lambda_sparse=2``).  Multi-GPU training all-gathers captions, masks and
  images so the candidate sets are global; on one process this reduces to the
  square B x B case implemented here.

Needs torch only.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

LONG_CONTEXT = 248
LONG_CLIP_SPLIT = 20  # rows [0, 20) from positional_embedding, [20, 248) from positional_embedding_res
PAD_ID = 0  # Long-CLIP tokenize() pads with zeros
SOT_ID = 49406
EOT_ID = 49407
SCORE_SCALE = 100.0  # fixed multiplier of the SIDM / DISM logits
LAMBDA_SPARSE = 2.0
LAMBDA_ALIGN = 10.0
MASK_THRESHOLD = 0.5
LN_EPS = 1e-5


# --------------------------------------------------------------------------
# Building blocks (OpenAI layout and parameter names)
# --------------------------------------------------------------------------
def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names
    (``in_proj_weight`` (3W, W) packed q|k|v, ``in_proj_bias`` (3W),
    ``out_proj.weight`` / ``out_proj.bias``), batch-first, our own math."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} not divisible by heads {heads}")
        self.width = width
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.normal_(self.in_proj_weight, std=width**-0.5)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, t, w = x.shape
        h = self.heads
        d = w // h
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3W)
        q, k, v = qkv.split(w, dim=-1)
        q = q.reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
        k = k.reshape(b, t, h, d).transpose(1, 2)
        v = v.reshape(b, t, h, d).transpose(1, 2)
        att = (q * d**-0.5) @ k.transpose(-1, -2)  # (B, H, T, T)
        if causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = att.masked_fill(future, float("-inf"))
        att = att.softmax(dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, t, w)
        return self.out_proj(out)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))


class ResidualBlock(nn.Module):
    """OpenAI ``ResidualAttentionBlock``: x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        # registration order = the reference's, so state_dict() lists keys in the release's order
        self.attn = SelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = MLP(width, width * mlp_ratio)
        self.ln_2 = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x


# --------------------------------------------------------------------------
# Mask network
# --------------------------------------------------------------------------
class AttentionPool(nn.Module):
    """Score each position with Linear(width, 1), softmax over positions,
    return the weighted sum of the inputs (B, width)."""

    def __init__(self, width: int):
        super().__init__()
        self.attention = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.attention(x).softmax(dim=1)  # (B, T, 1)
        return (w * x).sum(dim=1)


class MaskNet(nn.Module):
    """SmartCLIP's mask network.  ``forward(x)``: x (B, T, width) ``ln_final``
    outputs of every text position -> mask logits (B, width).

    Parameter names equal the released checkpoint's ``mask_net.*`` names with
    the prefix stripped (``resblocks.0.ln_1.weight``, ``resblocks.0.attn.in_proj_weight``,
    ..., ``attn_pool.attention.weight`` (1, W), ``attn_pool.attention.bias`` (1,)),
    so ``MaskNet.load_state_dict`` takes the released sub-dict directly.
    """

    def __init__(self, width: int, heads: int, layers: int = 1):
        super().__init__()
        self.width = width
        self.heads = heads
        self.resblocks = nn.ModuleList([ResidualBlock(width, heads) for _ in range(layers)])
        self.attn_pool = AttentionPool(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal=False)
        return self.attn_pool(x)


def mask_from_logits(logits: torch.Tensor, soft: bool = False) -> dict:
    """sigmoid, exact hard mask and the straight-through mask the reference uses
    (value ~ hard, gradient of the sigmoid).  ``use`` is what scores/losses take."""
    sig = torch.sigmoid(logits)
    hard = (sig >= MASK_THRESHOLD).to(sig.dtype)
    straight_through = hard - sig.detach() + sig
    return {"sigmoid": sig, "hard": hard, "straight_through": straight_through,
            "use": sig if soft else straight_through}


# --------------------------------------------------------------------------
# CLIP in OpenAI layout, Long-CLIP text
# --------------------------------------------------------------------------
class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch: int, width: int, layers: int, heads: int, embed: int):
        super().__init__()
        grid = image_size // patch
        self.patch = patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * width**-0.5)
        self.ln_pre = nn.LayerNorm(width, eps=LN_EPS)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width, eps=LN_EPS)
        self.proj = nn.Parameter(torch.randn(width, embed) * width**-0.5)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """All tokens after ln_post (B, 1+P, width), CLS first."""
        x = self.conv1(pixels).flatten(2).transpose(1, 2)  # (B, P, W), row-major patches
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x), causal=False)
        return self.ln_post(x)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.tokens(pixels)[:, 0] @ self.proj


class SmartCLIP(nn.Module):
    """Minimal OpenAI-layout CLIP with Long-CLIP text and the SmartCLIP mask
    network; ``load_state_dict`` takes the released OpenAI key names
    (``visual.*``, ``transformer.*``, ``token_embedding.weight``,
    ``positional_embedding``, ``positional_embedding_res``, ``ln_final.*``,
    ``text_projection``, ``logit_scale``, ``mask_net.*``)."""

    def __init__(self, *, embed: int, image_size: int, patch: int, vision_width: int,
                 vision_layers: int, context: int, vocab: int, text_width: int,
                 text_layers: int, mask_layers: int = 1, split: int = LONG_CLIP_SPLIT):
        super().__init__()
        self.context = context
        self.split = split
        self.visual = VisionTransformer(image_size, patch, vision_width, vision_layers,
                                        vision_width // 64, embed)
        self.transformer = Transformer(text_width, text_layers, text_width // 64)
        self.token_embedding = nn.Embedding(vocab, text_width)
        self.positional_embedding = nn.Parameter(torch.randn(context, text_width) * 0.01)
        self.positional_embedding_res = nn.Parameter(torch.randn(context, text_width) * 0.01)
        self.ln_final = nn.LayerNorm(text_width, eps=LN_EPS)
        self.text_projection = nn.Parameter(torch.randn(text_width, embed) * text_width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        self.mask_net = MaskNet(text_width, text_width // 64, mask_layers)

    # -- construction from a released state dict --------------------------------
    @staticmethod
    def dims_from_state_dict(sd: dict) -> dict:
        def count(prefix: str) -> int:
            return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

        conv = sd["visual.conv1.weight"]
        grid = round(math.sqrt(sd["visual.positional_embedding"].shape[0] - 1))
        return dict(
            embed=int(sd["text_projection"].shape[1]),
            image_size=int(conv.shape[-1]) * grid,
            patch=int(conv.shape[-1]),
            vision_width=int(conv.shape[0]),
            vision_layers=count("visual.transformer.resblocks."),
            context=int(sd["positional_embedding"].shape[0]),
            vocab=int(sd["token_embedding.weight"].shape[0]),
            text_width=int(sd["ln_final.weight"].shape[0]),
            text_layers=count("transformer.resblocks."),
            mask_layers=count("mask_net.resblocks."),
        )

    @classmethod
    def from_state_dict(cls, sd: dict, dtype: torch.dtype = torch.float32) -> "SmartCLIP":
        model = cls(**cls.dims_from_state_dict(sd))
        # OpenAI JIT-derived dicts may carry these scalars; the reference deletes them too
        skip = {"input_resolution", "context_length", "vocab_size"}
        model.load_state_dict(OrderedDict((k, v.to(dtype)) for k, v in sd.items() if k not in skip),
                              strict=True)
        return model.to(dtype).eval()

    # -- encoders ----------------------------------------------------------------
    def position_table(self) -> torch.Tensor:
        """The effective (context, width) table: rows [0, split) of
        positional_embedding, rows [split, context) of positional_embedding_res."""
        return torch.cat([self.positional_embedding[: self.split],
                          self.positional_embedding_res[self.split:]], dim=0)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised projected image embedding (B, embed)."""
        return self.visual(pixels)

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """ln_post(all tokens) @ proj, (B, 1+P, embed); row 0 == encode_image."""
        return self.visual.tokens(pixels) @ self.visual.proj

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (K, T<=context) -> (pooled projected (K, embed) unnormalised,
        ln_final outputs of all positions (K, T, width))."""
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.position_table()[:t]
        x = self.transformer(x, causal=True)
        hidden = self.ln_final(x)
        pooled = hidden[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]
        return pooled @ self.text_projection, hidden

    def mask_logits(self, text_hidden: torch.Tensor) -> torch.Tensor:
        return self.mask_net(text_hidden.detach())


# --------------------------------------------------------------------------
# Scores and losses
# --------------------------------------------------------------------------
def _l2n(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)  # no epsilon, as the reference


def clip_scores(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Plain cosine (N images, K captions)."""
    return _l2n(image_emb) @ _l2n(text_emb).T


def smartclip_scores(image_emb: torch.Tensor, text_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """S[i, j] = cos(image_emb[i] * mask[j], text_emb[j]); (N, K).

    image_emb (N, E) and text_emb (K, E) unnormalised; mask (K, E) per caption.
    The image is masked then normalised; the text is only normalised."""
    masked = image_emb[:, None, :] * mask[None, :, :]  # (N, K, E)
    return (_l2n(masked) * _l2n(text_emb)[None, :, :]).sum(dim=-1)


def smartclip_losses(image_emb: torch.Tensor, text_emb: torch.Tensor, mask: torch.Tensor,
                     lambda_sparse: float = LAMBDA_SPARSE, lambda_align: float = LAMBDA_ALIGN,
                     scale: float = SCORE_SCALE) -> dict:
    """Training losses for B paired (image i, caption i), single process.

    image_emb, text_emb, mask: (B, E).  ``mask`` is the mask the reference uses
    in training (the straight-through hard mask by default, see
    ``mask_from_logits(...)["use"]``)."""
    b = image_emb.shape[0]
    if text_emb.shape[0] != b or mask.shape[0] != b:
        raise ValueError("SmartCLIP losses need paired batches: B images, B captions, B masks")
    s = smartclip_scores(image_emb, text_emb, mask)  # (images, captions)
    targets = torch.arange(b, device=image_emb.device)
    sidm_logits = scale * s  # row: image i; columns: captions j (each with its own mask)
    dism_logits = scale * s.T  # row: caption i (its mask); columns: images k
    loss_sparse = mask.abs().mean()
    loss_sidm = F.cross_entropy(sidm_logits, targets)
    loss_dism = F.cross_entropy(dism_logits, targets)
    total = lambda_sparse * loss_sparse + lambda_align * (loss_sidm + loss_dism)
    return {"loss_sparse": loss_sparse, "loss_sidm": loss_sidm, "loss_dism": loss_dism,
            "loss_total": total, "sidm_logits": sidm_logits, "dism_logits": dism_logits}

