#!/usr/bin/env python3
"""Generate the Hugging Face ``SiglipModel`` fixtures for clipscope's Rust tests.

Writes ``tests/fixtures/siglip/`` (deterministic, byte-identical on re-runs):

    A/  SigLIP 1 kind (as ``google/siglip-base-patch16-224``): SentencePiece tokenizer
    B/  SigLIP 2 fixed-resolution kind (as ``google/siglip2-base-patch16-224``, which is
        also ``model_type: "siglip"`` / ``SiglipModel``): Gemma-style ``tokenizer.json``
        config.json                 ``SiglipModel.save_pretrained`` (model_type "siglip")
        model.safetensors           float32, Hugging Face key names, written by save_pretrained
        preprocessor_config.json    ``SiglipImageProcessorPil(size=...).save_pretrained``:
                                    resize straight to {height, width} (no crop), bicubic
                                    (resample 3), rescale 1/255, mean = std = 0.5
        A only: spiece.model        a 500-piece Unigram SentencePiece model trained here
                tokenizer_config.json   ``SiglipTokenizer(vocab_file=..., model_input_names=
                                    ["input_ids"]).save_pretrained`` (what the hub has; v5
                                    writes no special_tokens_map.json / added_tokens.json)
        B only: tokenizer.json      BPE + byte fallback built with the ``tokenizers`` package
                tokenizer_config.json   hand-written as the hub's SigLIP 2 one (GemmaTokenizer,
                                    add_eos_token, right padding, model_input_names input_ids)
        reference.safetensors       float32 reference tensors (names below)
        reference.json              configs, versions, weight keys and shapes, tokenizer
                                    details, prompts and ids, tokenizer-only cases, image
                                    geometry, self-check numbers

    A  vision hidden 64, 2 layers, 2 heads, MLP 96, patch 16, image 64 (4x4 grid);
       text hidden 64 (projection 64), 2 layers, 2 heads, MLP 96, 64 positions,
       vocab 500 (= spiece size); exp(logit_scale) 7.5, logit_bias -2.3
    B  vision hidden 48, 3 layers, 3 heads, MLP 80, patch 8, image 48 (6x6 grid);
       text hidden 40, ``projection_size`` 48 (text head Linear(40, 48)), 2 layers,
       2 heads, MLP 72, 64 positions, vocab = tokenizer size; exp(logit_scale) 12.5,
       logit_bias -4.7
    Both: gelu_pytorch_tanh, layer_norm_eps 1e-6, vision_use_head (attention-pool head).

Tokenizers
----------
A (SigLIP 1): ``spiece.model`` is trained with ``sentencepiece`` on a seeded corpus of
CLIP-like captions, canonicalised as SiglipTokenizer canonicalises text (lower-case,
ASCII punctuation removed, whitespace collapsed) -- trainer options in ``SPM_TRAINER``
(Unigram, nmt_nfkc, add_dummy_prefix, remove_extra_whitespaces, pad 0 ``<pad>``, eos 1
``</s>``, unk 2 ``<unk>``, no bos: the ids of SigLIP's T5 ``cc_en.32000`` vocabulary).
Loaded as ``SiglipTokenizer(vocab_file=..., model_input_names=["input_ids"])`` exactly as
transformers' ``convert_siglip_to_hf.py`` builds the hub tokenizer (pad token ``</s>``,
so padding is id 1, like the hub) and saved with ``save_pretrained``.

B (SigLIP 2 / Gemma): a BPE learnt here (deterministic Python BPE on the same kind of
captions, mixed case and punctuation; merges never start with "▁" so they never cross a
word) with Gemma's layout and pipeline: ids 0 ``<pad>``, 1 ``<eos>``, 2 ``<bos>``,
3 ``<unk>``, 4 ``<mask>``, 5..260 byte pieces ``<0x00>``..``<0xFF>``, then every printable
ASCII character, the corpus' other characters and "▁", then the merges.  tokenizer.json:
normalizer Replace(" " -> "▁") (no lower-casing, no dummy prefix), no pre-tokenizer,
BPE(byte_fallback, fuse_unk, unk ``<unk>``), post-processor TemplateProcessing
"$A <eos>", decoder Replace("▁" -> " ") + ByteFallback + Fuse.  tokenizer_config.json
says GemmaTokenizer, add_bos_token false, add_eos_token true, padding_side right,
model_input_names ["input_ids"] -- what transformers' ``convert_siglip2_to_hf.py`` sets.
(Gemma, hence SigLIP 2, names its eos ``<eos>``, not ``</s>``.)

The tokenizer loaded for the references is ``AutoTokenizer.from_pretrained(folder)``
(A -> SiglipTokenizer, B -> GemmaTokenizer, recorded in reference.json).

References
----------
Computed from the model *freshly loaded* with ``SiglipModel.from_pretrained(folder)``
(eval, float32, default attention implementation, ``torch.set_num_threads(2)``).
S image size, P patches, H vision hidden, Ht text hidden, D = H text projection,
N prompts (6), L = 64 text positions.

reference.safetensors (float32)
    pixel_values        (1, 3, S, S)  SiglipImageProcessorPil.from_pretrained(folder) on
                                      tests/fixtures/parity/images/wide.png (97x61, RGB)
    vision_hidden       (1, P, H)     vision_model(pixel_values).last_hidden_state
                                      (after post_layernorm)
    image_embeds        (1, H)        get_image_features(pixel_values).pooler_output
                                      (attention-pooling head, unnormalised)
    image_dense         (P, H)        vision_model.head(vision_hidden[:, i:i+1]) for each
                                      patch i: the head attending to that token only
                                      = y + mlp(layernorm(y)), y = out_proj(W_v x + b_v)
    input_ids           (N, L)        tokenizer(prompts, padding="max_length",
                                      max_length=64, truncation=True), as float
    attention_mask      (N, L)        the same call with return_attention_mask=True
                                      (the hub tokenizers return no mask by default)
    text_hidden         (N, L, Ht)    text_model(input_ids=ids).last_hidden_state (after
                                      final_layer_norm), input_ids ONLY (no mask)
    text_tokens         (N, L, D)     text_model.head applied to every position
    text_embeds         (N, D)        pooler_output (= head of the last position)
    logits_per_image    (1, N)        model(input_ids=ids, pixel_values=pv)
    probs               (1, N)        sigmoid(logits_per_image)
    text_embeds_masked  (N, D)        text_model(input_ids, attention_mask).pooler_output
                                      (information only)
    logit_scale, logit_bias  ()       the raw parameters (logits use exp(logit_scale))

Self-checks (numbers in reference.json ``self_checks``): reload bit-identical; a PIL
replay of the image processor equals pixel_values exactly; torchvision backend
difference; get_image_features == vision_model pooler == head(vision_hidden);
image_dense vs the explicit formula; text_tokens[:, -1] == text_embeds; logits ==
exp(logit_scale) * cos + logit_bias; an eager-attention reload reproduces everything;
A: AutoTokenizer == slow SiglipTokenizer and == plain SentencePiece on the canonical
text; B: AutoTokenizer == the raw ``tokenizers.Tokenizer.from_file("tokenizer.json")``.

Run from the repository root:

    python3 tools/make_siglip_fixtures.py
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import math
import random
import re
import shutil
import string
import sys
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

import sentencepiece as spm
import tokenizers
import transformers
from sentencepiece import sentencepiece_model_pb2 as spm_pb2
from tokenizers import AddedToken as TkAddedToken
from tokenizers import Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from transformers import (AutoImageProcessor, AutoTokenizer, SiglipConfig, SiglipImageProcessorPil,
                          SiglipModel, SiglipTokenizer)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "siglip"
IMAGE = REPO_ROOT / "tests" / "fixtures" / "parity" / "images" / "wide.png"
MAX_LEN = 64
SPIECE_UNDERLINE = "\u2581"

PROMPTS = [
    "a red circle above a blue square",
    "A Dog, without a COLLAR!",
    "  a   photo of    two   cats  ",
    "3 dogs and 12 birds in 2024",
    "a photograph of a small brown dog sitting on a wooden bench next to a tall red fire "
    "hydrant in the middle of a busy city street while three people walk past with black "
    "umbrellas and a yellow taxi waits at the traffic light near an old stone building with "
    "many windows under a dark gray sky full of clouds and birds flying above the river",
    "an apple on a wooden table",
]

TOKENIZER_CASES = [
    "Hello, World!",
    "a!b\"c#d$e%f&g'h(i)j*k+l,m-n.o/p:q;r<s=t>u?v@w[x\\y]z^_`{|}~end",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "a\tred\ncircle\r\non the  grass",
    "ThE QuIcK BrOwN FoX",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve Zo\u00eb",
    "a \U0001F436 and a \U0001F431!",
    "",
    "   ",
    "a dog </s> a cat",
    "a dog</s>cat",
    "a dog </s>",
    "a dog <eos>",
    "<pad> <unk> <eos> <bos>",
    "a\u2581dog \u2581\u2581 cat",
    "3.14159 and 1,000,000 in 2024",
    "it\u2019s a \u201cdog\u201d \u2014 really\u2026",
    "\uff21\uff22\uff23\u3000\uff11\uff12\uff13",
    "\u732b\u3068\u72ac",
    "cats &amp; dogs",
    "  leading and trailing  ",
    "zero\u200bwidth no\u00a0break\u2028line \u0007bell\u00adsoft",
]

# SentencePiece trainer options for A (recorded in reference.json)
SPM_TRAINER = dict(
    model_type="unigram",
    vocab_size=500,
    pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
    pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=True,
    remove_extra_whitespaces=True,
    split_by_whitespace=True,
    byte_fallback=False,
    character_coverage=1.0,
    hard_vocab_limit=True,
    input_sentence_size=0,
    shuffle_input_sentence=False,
    num_threads=1,
    minloglevel=2,
)

B_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0..4, as Gemma
B_MERGES = 460

MODELS = {
    "A": dict(
        kind="siglip1",
        seed=20251001,
        corpus_seed=11,
        logit_scale=math.log(7.5),
        logit_bias=-2.3,
        vision=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                    image_size=64, patch_size=16),
        text=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                  projection_size=64, pad_token_id=1, eos_token_id=1, bos_token_id=None),
    ),
    "B": dict(
        kind="siglip2",
        seed=20251017,
        corpus_seed=22,
        logit_scale=math.log(12.5),
        logit_bias=-4.7,
        vision=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=3,
                    image_size=48, patch_size=8),
        text=dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=2,
                  projection_size=48, pad_token_id=0, eos_token_id=1, bos_token_id=2),
    ),
}
COMMON = dict(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)


def g3(x: float) -> float:
    return float(f"{x:.3g}")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()


# --------------------------------------------------------------------------
# Caption corpus (seeded; no data files)
# --------------------------------------------------------------------------
COLORS = "red blue green yellow black white brown orange purple pink gray golden silver dark bright".split()
ADJS = ("small large tiny big tall short little huge old young wooden metal plastic fluffy shiny "
        "striped spotted wet empty busy stone cute happy").split()
ANIMALS = ("dog cat bird horse cow sheep elephant giraffe zebra bear duck fish rabbit mouse tiger "
           "lion monkey puppy kitten owl").split()
OBJECTS = ("car bus truck bicycle boat train plane chair table bench umbrella bottle cup bowl plate "
           "pizza sandwich cake apple banana orange book clock lamp phone laptop keyboard kite ball "
           "hat shirt bag vase flower tree house building window door sign circle square triangle "
           "star heart collar taxi cloud").split() + ["fire hydrant", "traffic light", "stop sign",
                                                      "teddy bear"]
PEOPLE = "man woman child boy girl person player chef baby family".split()
PLACES = ("street beach park kitchen field forest room city garden road river lake mountain snow "
          "grass sky water desert market station office bedroom bathroom restaurant café").split()
PREPS = ["on", "in", "next to", "near", "under", "above", "below", "behind", "in front of", "beside",
         "on top of", "inside", "outside", "with", "without", "by", "past", "at"]
VERBS = ["sitting", "standing", "running", "walking", "eating", "sleeping", "playing", "flying",
         "jumping", "looking at", "holding", "riding", "lying", "swimming", "parked", "waiting"]
NUMS = "one two three four five six seven eight nine ten many several some".split() + ["a few"]
PHOTOS = ["a photo of", "a photograph of", "a picture of", "an image of", "a close up of",
          "a drawing of", "a painting of", "a black and white photo of", "a blurry photo of",
          "a cropped photo of", "a rendering of", "a sketch of", "a bright photo of",
          "a dark photo of", "a good photo of", "a bad photo of", "itap of"]
EXTRA = ["crème brûlée", "naïve art", "a piñata", "jalapeño peppers", "a résumé", "the über driver",
         "zoë's garden", "the façade of the building", "the middle of the street", "people walk past",
         "full of clouds", "many windows"]
IRREGULAR = {"mouse": "mice", "sheep": "sheep", "fish": "fish", "child": "children", "man": "men",
             "woman": "women", "person": "people", "shelf": "shelves"}


def _plural(w: str) -> str:
    head, _, last = w.rpartition(" ")
    if last in IRREGULAR:
        p = IRREGULAR[last]
    elif last.endswith(("s", "sh", "ch", "x")):
        p = last + "es"
    elif last.endswith("y") and last[-2] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def _art(w: str) -> str:
    return ("an " if w[0] in "aeiou" else "a ") + w


def _caption(r: random.Random) -> str:
    k = r.randrange(9)
    thing = r.choice(ANIMALS + OBJECTS + PEOPLE)
    adj = r.choice(COLORS + ADJS)
    shape = lambda: _art(r.choice(COLORS) + " " + r.choice(["circle", "square", "triangle", "star"]))
    if k == 0:
        return f"{r.choice(PHOTOS)} {_art(adj + ' ' + thing)}"
    if k == 1:
        return f"{_art(adj + ' ' + thing)} {r.choice(VERBS)} {r.choice(PREPS)} the {r.choice(PLACES)}"
    if k == 2:
        return f"{r.choice(NUMS)} {_plural(thing)} {r.choice(PREPS)} {_art(r.choice(COLORS) + ' ' + r.choice(OBJECTS))}"
    if k == 3:
        return f"{shape()} {r.choice(PREPS)} {shape()}"
    if k == 4:
        return f"{r.choice(PHOTOS)} {r.randrange(0, 2030)} {_plural(thing)} in the {r.choice(PLACES)}"
    if k == 5:
        return f"{_art(thing)} and {_art(r.choice(ANIMALS + OBJECTS))} {r.choice(PREPS)} {_art(adj + ' ' + r.choice(OBJECTS))}"
    if k == 6:
        return f"{r.choice(PHOTOS)} {r.choice(EXTRA)}"
    if k == 7:
        return f"the {r.choice(PLACES)} with {r.choice(NUMS)} {r.choice(COLORS)} {_plural(r.choice(OBJECTS))}"
    return f"{_art(r.choice(PEOPLE))} {r.choice(VERBS)} {_art(adj + ' ' + r.choice(ANIMALS))} {r.choice(PREPS)} the {r.choice(PLACES)}"


def caption_corpus(seed: int, n: int = 4000) -> list[str]:
    r = random.Random(seed)
    return [_caption(r) for _ in range(n)]


def raw_captions(seed: int, n: int = 4000) -> list[str]:
    """Captions as people type them: some capitalised, some with punctuation."""
    r = random.Random(seed + 1)
    out = []
    for s in caption_corpus(seed, n):
        if r.random() < 0.4:
            s = s[0].upper() + s[1:]
        if r.random() < 0.1:
            s = s.replace(" ", ", ", 1)
        if r.random() < 0.3:
            s += r.choice([".", "!", "?", "..."])
        out.append(s)
    return out


def siglip_canonicalize(text: str) -> str:
    """big_vision / SiglipTokenizer.canonicalize_text (do_lower_case=True)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------
# Tokenizer A: SentencePiece Unigram + SiglipTokenizer
# --------------------------------------------------------------------------
def train_spiece(corpus_seed: int) -> bytes:
    sents = [siglip_canonicalize(s) for s in caption_corpus(corpus_seed)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sents), model_writer=buf, **SPM_TRAINER)
    return buf.getvalue()


def spiece_description(model_bytes: bytes) -> dict:
    proto = spm_pb2.ModelProto.FromString(model_bytes)

    def spec(msg) -> dict:
        out = OrderedDict()
        for f in msg.DESCRIPTOR.fields:
            v = getattr(msg, f.name)
            if f.name == "precompiled_charsmap":
                out[f.name] = {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()}
            elif not isinstance(v, (str, bytes, bool, int, float)):  # repeated field
                out[f.name] = list(v)
            elif f.enum_type is not None:
                out[f.name] = f.enum_type.values_by_number[v].name
            elif isinstance(v, float):
                out[f.name] = float(f"{v:.7g}")
            else:
                out[f.name] = v
        return out

    type_name = spm_pb2.ModelProto.SentencePiece.Type.Name
    return OrderedDict(
        normalizer_spec=spec(proto.normalizer_spec),
        denormalizer_spec=spec(proto.denormalizer_spec),
        trainer_spec=spec(proto.trainer_spec),
        pieces=[[p.piece, float(f"{p.score:.7g}"), type_name(p.type)] for p in proto.pieces],
    )


def build_tokenizer_a(d: Path, corpus_seed: int) -> tuple[bytes, dict]:
    model_bytes = train_spiece(corpus_seed)
    with tempfile.TemporaryDirectory() as tmp:
        vf = Path(tmp) / "spiece.model"
        vf.write_bytes(model_bytes)
        # exactly what transformers' convert_siglip_to_hf.py does for the hub checkpoints
        tok = SiglipTokenizer(vocab_file=str(vf), model_input_names=["input_ids"])
        written = tok.save_pretrained(str(d))
    files = sorted(Path(f).name for f in written if Path(f).exists())
    assert (d / "spiece.model").read_bytes() == model_bytes
    return model_bytes, {"save_pretrained_wrote": files}


# --------------------------------------------------------------------------
# Tokenizer B: Gemma-style BPE tokenizer.json
# --------------------------------------------------------------------------
def learn_bpe(sents: list[str], n_merges: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Plain BPE on "▁word" units (Gemma has no dummy prefix: the first word has no "▁").

    Ties are broken by the pair itself (smallest first), so the result is deterministic.
    A unit only has "▁" as its first character, so no merge's right side starts with
    "▁" and merges never cross words even though tokenizer.json has no pre-tokenizer.
    """
    units = collections.Counter()
    for s in sents:
        t = s.replace(" ", SPIECE_UNDERLINE)
        parts, cur = [], ""
        for ch in t:
            if ch == SPIECE_UNDERLINE and cur:
                parts.append(cur)
                cur = ""
            cur += ch
        if cur:
            parts.append(cur)
        units.update(parts)
    words = {w: list(w) for w in sorted(units)}
    alphabet = sorted({c for w in units for c in w} | {chr(i) for i in range(33, 127)})
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in units.items():
            sym = words[w]
            for a, b in zip(sym, sym[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p], p))
        assert not b.startswith(SPIECE_UNDERLINE)
        merges.append((a, b))
        for w in words:
            sym, out, i = words[w], [], 0
            while i < len(sym):
                if i + 1 < len(sym) and sym[i] == a and sym[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            words[w] = out
    return alphabet, merges


def build_tokenizer_b(d: Path, corpus_seed: int) -> dict:
    alphabet, merges = learn_bpe(raw_captions(corpus_seed), B_MERGES)
    vocab = OrderedDict((t, i) for i, t in enumerate(B_SPECIALS))
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for c in alphabet:
        vocab.setdefault(c, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(BPE(vocab=dict(vocab), merges=merges, unk_token="<unk>", fuse_unk=True,
                        byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", SPIECE_UNDERLINE)
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.add_special_tokens([TkAddedToken(t, special=True, normalized=False) for t in B_SPECIALS])
    tok.post_processor = processors.TemplateProcessing(
        single="$A:0 <eos>:0", pair="$A:0 <eos>:0 $B:1 <eos>:1", special_tokens=[("<eos>", 1)])
    tok.save(str(d / "tokenizer.json"))
    added = OrderedDict(
        (str(i), OrderedDict(content=t, lstrip=False, normalized=False, rstrip=False, single_word=False,
                             special=True)) for i, t in enumerate(B_SPECIALS))
    tok_cfg = OrderedDict(
        add_bos_token=False,
        add_eos_token=True,
        added_tokens_decoder=added,
        bos_token="<bos>",
        clean_up_tokenization_spaces=False,
        eos_token="<eos>",
        mask_token="<mask>",
        model_input_names=["input_ids"],
        model_max_length=MAX_LEN,
        pad_token="<pad>",
        padding_side="right",
        spaces_between_special_tokens=False,
        tokenizer_class="GemmaTokenizer",
        unk_token="<unk>",
    )
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n")
    return dict(vocab_size=tok.get_vocab_size(with_added_tokens=True), n_merges=len(merges),
                alphabet="".join(alphabet), byte_pieces=[5, 260],
                first_merges=[list(m) for m in merges[:20]], corpus_seed=corpus_seed)


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------
def _n(g: torch.Generator, *shape, std: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std


def random_state_dict(model: SiglipModel, seed: int, logit_scale: float, logit_bias: float) -> OrderedDict:
    """New values for every tensor of model.state_dict() (same keys, order, shapes)."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    out = OrderedDict()
    for k, v in model.state_dict().items():
        shape = tuple(v.shape)
        owner, _, leaf = k.rpartition(".")
        mod = modules.get(owner)
        if k == "logit_scale":
            t = torch.full(shape, logit_scale, dtype=torch.float32)
        elif k == "logit_bias":
            t = torch.full(shape, logit_bias, dtype=torch.float32)
        elif k == "vision_model.head.probe":
            t = _n(g, *shape, std=1.0)
        elif isinstance(mod, torch.nn.LayerNorm):
            t = 1.0 + _n(g, *shape, std=0.3) if leaf == "weight" else _n(g, *shape, std=0.2)
        elif isinstance(mod, torch.nn.MultiheadAttention):
            if leaf == "in_proj_weight":
                w = shape[1]
                t = _n(g, *shape, std=w ** -0.5)
                t[: 2 * w] *= 2.0  # q, k rows: sharper attention
            else:
                assert leaf == "in_proj_bias", k
                t = _n(g, *shape, std=0.1)
        elif isinstance(mod, torch.nn.Embedding):
            if owner.endswith("position_embedding"):
                t = _n(g, *shape, std=0.5)
            else:
                assert owner.endswith("token_embedding"), k
                t = _n(g, *shape, std=1.0)
        elif isinstance(mod, torch.nn.Conv2d):
            fan_in = shape[1] * shape[2] * shape[3] if leaf == "weight" else None
            t = _n(g, *shape, std=2.5 * fan_in ** -0.5) if leaf == "weight" else _n(g, *shape, std=0.1)
        elif isinstance(mod, torch.nn.Linear):
            if leaf == "bias":
                t = _n(g, *shape, std=0.1)
            else:
                gain = 2.0 if owner.endswith(("q_proj", "k_proj")) else \
                    1.5 if owner.endswith(("out_proj", "fc2")) else 1.0
                t = _n(g, *shape, std=gain * shape[1] ** -0.5)
        else:
            raise RuntimeError(f"no randomisation rule for state-dict key {k} {shape}")
        assert tuple(t.shape) == shape, (k, t.shape, shape)
        out[k] = t.contiguous()
    return out


# --------------------------------------------------------------------------
# Helpers for the references
# --------------------------------------------------------------------------
def replay_pixels(img: Image.Image, size: int) -> torch.Tensor:
    """What SiglipImageProcessorPil does: PIL bicubic resize of the uint8 RGB image straight
    to (size, size), float32 / 255, (x - 0.5) / 0.5, CHW."""
    x = img.convert("RGB").resize((size, size), Image.BICUBIC)
    a = torch.from_numpy(np.asarray(x, dtype=np.uint8).copy()).permute(2, 0, 1).to(torch.float32) / 255.0
    return ((a - 0.5) / 0.5).unsqueeze(0)


def head_dense_explicit(head, x: torch.Tensor) -> torch.Tensor:
    """Each token through the attention-pool head as its only key: softmax over one key is 1,
    so attention = out_proj(W_v x + b_v); then y + mlp(layernorm(y))."""
    hdim = x.shape[-1]
    wv = head.attention.in_proj_weight[2 * hdim:]
    bv = head.attention.in_proj_bias[2 * hdim:]
    y = head.attention.out_proj(x @ wv.t() + bv)
    return y + head.mlp(head.layernorm(y))


def tokenizer_case_a(tok, slow, sp, text: str) -> dict:
    row = OrderedDict(text=text)
    try:
        ids = tok(text)["input_ids"]
    except Exception as e:  # pragma: no cover - recorded, not raised
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    row["ids"] = ids
    row["tokens"] = tok.convert_ids_to_tokens(ids)
    row["tokenize"] = tok.tokenize(text)
    slow_ids = slow(text)["input_ids"]
    row["slow_siglip_tokenizer_equal"] = slow_ids == ids
    if slow_ids != ids:
        row["slow_siglip_tokenizer_ids"] = slow_ids
    canon = siglip_canonicalize(text)
    row["canonical"] = canon
    row["spm_normalized"] = sp.normalize(canon)
    plain = sp.encode(canon) + [sp.piece_to_id("</s>")]
    row["plain_spm_plus_eos"] = plain
    row["equals_plain_spm_plus_eos"] = plain == ids
    row["decoded"] = tok.decode(ids)
    return row


def tokenizer_case_b(tok, raw: Tokenizer, text: str) -> dict:
    row = OrderedDict(text=text)
    try:
        ids = tok(text)["input_ids"]
    except Exception as e:  # pragma: no cover
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    row["ids"] = ids
    row["tokens"] = tok.convert_ids_to_tokens(ids)
    enc = raw.encode(text)
    row["raw_tokenizer_json_equal"] = enc.ids == ids
    if enc.ids != ids:
        row["raw_tokenizer_json_ids"] = enc.ids
    row["normalized"] = raw.normalizer.normalize_str(text)
    row["decoded"] = tok.decode(ids)
    row["decoded_skip_special"] = tok.decode(ids, skip_special_tokens=True)
    return row


def versions() -> dict:
    import google.protobuf
    import PIL
    import safetensors
    try:
        import torchvision
        tv = torchvision.__version__.split("+")[0]
    except Exception:  # pragma: no cover
        tv = None
    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "sentencepiece": spm.__version__, "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__, "protobuf": google.protobuf.__version__,
            "pillow": PIL.__version__, "numpy": np.__version__, "torchvision": tv,
            "python": ".".join(map(str, sys.version_info[:3]))}


# --------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------
@torch.no_grad()
def build(name: str, spec: dict) -> None:
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    v_cfg, t_cfg = spec["vision"], spec["text"]
    size, patch = v_cfg["image_size"], v_cfg["patch_size"]
    grid = size // patch

    # 1. tokenizer files
    if spec["kind"] == "siglip1":
        spiece_bytes, tok_build = build_tokenizer_a(d, spec["corpus_seed"])
        tok_build["trainer_options"] = {k: v for k, v in SPM_TRAINER.items() if k != "minloglevel"}
        tok_build["corpus"] = (f"4000 seeded captions (seed {spec['corpus_seed']}), canonicalised "
                               "(lower-case, ASCII punctuation removed, whitespace collapsed)")
        vocab_size = spm.SentencePieceProcessor(model_proto=spiece_bytes).get_piece_size()
    else:
        tok_build = build_tokenizer_b(d, spec["corpus_seed"])
        vocab_size = tok_build["vocab_size"]

    # 2. model: SiglipConfig -> SiglipModel -> seeded weights -> save_pretrained
    config = SiglipConfig(text_config=dict(vocab_size=vocab_size, max_position_embeddings=MAX_LEN,
                                           **COMMON, **t_cfg),
                          vision_config=dict(num_channels=3, vision_use_head=True, **COMMON, **v_cfg))
    torch.manual_seed(spec["seed"])
    model = SiglipModel(config).eval()
    sd = random_state_dict(model, spec["seed"] + 1, spec["logit_scale"], spec["logit_bias"])
    model.load_state_dict(sd, strict=True)
    model.save_pretrained(str(d))
    del model
    SiglipImageProcessorPil(size={"height": size, "width": size}).save_pretrained(str(d))
    on_disk = load_file(str(d / "model.safetensors"))
    assert set(on_disk) == set(sd), set(on_disk) ^ set(sd)
    for k in sd:
        assert on_disk[k].dtype == torch.float32 and torch.equal(on_disk[k], sd[k]), k
    keys = [{"name": k, "shape": list(v.shape), "dtype": "float32"} for k, v in sorted(on_disk.items())]
    print(f"{name}: model.safetensors keys ({len(keys)}):")
    for k in keys:
        print(f"    {k['name']} {k['shape']}")

    # 3. fresh load of everything from the folder
    model = SiglipModel.from_pretrained(str(d)).eval()
    assert model.dtype == torch.float32 and not model.training
    loaded = model.state_dict()
    for k in sd:
        assert torch.equal(loaded[k], sd[k]), k
    attn_impl = model.config._attn_implementation
    tok = AutoTokenizer.from_pretrained(str(d))
    proc = SiglipImageProcessorPil.from_pretrained(str(d))
    auto_proc = AutoImageProcessor.from_pretrained(str(d))

    # 4. image
    img = Image.open(IMAGE)
    img.load()
    assert img.mode == "RGB", img.mode
    pixel_values = proc(img.convert("RGB"), return_tensors="pt")["pixel_values"].to(torch.float32)
    assert pixel_values.shape == (1, 3, size, size), pixel_values.shape
    d_replay = maxdiff(replay_pixels(img, size), pixel_values)
    assert d_replay == 0.0, d_replay
    pv_tv = auto_proc(img.convert("RGB"), return_tensors="pt")["pixel_values"]
    d_torchvision = maxdiff(pv_tv, pixel_values)

    vo = model.vision_model(pixel_values=pixel_values)
    vision_hidden = vo.last_hidden_state
    assert vision_hidden.shape == (1, grid * grid, v_cfg["hidden_size"])
    feats = model.get_image_features(pixel_values=pixel_values)
    image_embeds = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    head = model.vision_model.head
    d_img_pool = maxdiff(image_embeds, vo.pooler_output)
    d_img_head = maxdiff(image_embeds, head(vision_hidden))
    image_dense = torch.cat([head(vision_hidden[:, i:i + 1, :]) for i in range(vision_hidden.shape[1])], 0)
    d_dense = maxdiff(image_dense, head_dense_explicit(head, vision_hidden[0]))
    assert d_img_pool < 1e-6 and d_img_head < 1e-5 and d_dense < 1e-5, (d_img_pool, d_img_head, d_dense)

    # 5. text
    default_call = tok(PROMPTS, padding="max_length", max_length=MAX_LEN, truncation=True)
    returned_keys = sorted(default_call.keys())
    enc = tok(PROMPTS, padding="max_length", max_length=MAX_LEN, truncation=True, return_attention_mask=True)
    assert enc["input_ids"] == default_call["input_ids"]
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    mask = torch.tensor(enc["attention_mask"], dtype=torch.long)
    assert ids.shape == (len(PROMPTS), MAX_LEN)
    to = model.text_model(input_ids=ids)
    text_hidden = to.last_hidden_state
    text_embeds = to.pooler_output
    text_tokens = model.text_model.head(text_hidden)
    d_last = maxdiff(text_tokens[:, -1], text_embeds)
    assert d_last < 1e-6, d_last
    text_embeds_masked = model.text_model(input_ids=ids, attention_mask=mask).pooler_output
    d_masked = maxdiff(text_embeds, text_embeds_masked)
    d_masked_rows = [g3(maxdiff(text_embeds[i], text_embeds_masked[i])) for i in range(len(PROMPTS))]
    feats_t = model.get_text_features(input_ids=ids)
    d_get_text = maxdiff(feats_t.pooler_output if hasattr(feats_t, "pooler_output") else feats_t, text_embeds)

    out = model(input_ids=ids, pixel_values=pixel_values)
    logits = out.logits_per_image
    probs = torch.sigmoid(logits)
    cos = F.cosine_similarity(image_embeds, text_embeds, dim=-1).unsqueeze(0)
    scale, bias = model.logit_scale.reshape(()), model.logit_bias.reshape(())
    d_logits = maxdiff(logits, scale.exp() * cos + bias)
    d_logits_t = maxdiff(out.logits_per_text, logits.t())
    assert d_logits < 1e-5 and d_logits_t == 0.0, (d_logits, d_logits_t)
    d_out_img = maxdiff(out.image_embeds, F.normalize(image_embeds, dim=-1))
    d_out_txt = maxdiff(out.text_embeds, F.normalize(text_embeds, dim=-1))
    assert d_out_img < 1e-6 and d_out_txt < 1e-6

    ref = OrderedDict()
    ref["pixel_values"] = pixel_values
    ref["vision_hidden"] = vision_hidden
    ref["image_embeds"] = image_embeds
    ref["image_dense"] = image_dense
    ref["input_ids"] = ids.to(torch.float32)
    ref["attention_mask"] = mask.to(torch.float32)
    ref["text_hidden"] = text_hidden
    ref["text_tokens"] = text_tokens
    ref["text_embeds"] = text_embeds
    ref["logits_per_image"] = logits
    ref["probs"] = probs
    ref["text_embeds_masked"] = text_embeds_masked
    ref["logit_scale"] = scale.clone()
    ref["logit_bias"] = bias.clone()
    ref = OrderedDict((k, v.detach().to(torch.float32).contiguous()) for k, v in ref.items())
    save_file(ref, str(d / "reference.safetensors"))

    # 6. the same references with eager attention (what a hand-written port computes)
    eager = SiglipModel.from_pretrained(str(d), attn_implementation="eager").eval()
    vo_e = eager.vision_model(pixel_values=pixel_values)
    to_e = eager.text_model(input_ids=ids)
    eager_diffs = dict(
        vision_hidden=g3(maxdiff(vo_e.last_hidden_state, vision_hidden)),
        image_embeds=g3(maxdiff(vo_e.pooler_output, image_embeds)),
        text_hidden=g3(maxdiff(to_e.last_hidden_state, text_hidden)),
        text_embeds=g3(maxdiff(to_e.pooler_output, text_embeds)),
        text_embeds_masked=g3(maxdiff(eager.text_model(input_ids=ids, attention_mask=mask).pooler_output,
                                      text_embeds_masked)),
    )
    assert max(eager_diffs.values()) < 1e-4, eager_diffs
    del eager

    # 7. prompts and tokenizer-only cases
    prompts = []
    for i, text in enumerate(PROMPTS):
        row = ids[i].tolist()
        m = mask[i].tolist()
        n = int(sum(m))
        full = tok(text)["input_ids"]
        prompts.append(OrderedDict(
            text=text,
            input_ids=row,
            attention_mask=m,
            length=n,
            ids_unpadded=row[:n],
            tokens=tok.convert_ids_to_tokens(row[:n]),
            truncated=len(full) > MAX_LEN,
            untruncated_length=len(full),
            last_real_id=row[n - 1],
        ))
        assert all(x == tok.pad_token_id for x in row[n:]), (name, i)
        assert row[:n] == (full if len(full) <= MAX_LEN else row[:n])
    tok_info = OrderedDict(
        auto_tokenizer_class=type(tok).__name__,
        auto_tokenizer_module=type(tok).__module__,
        is_fast=bool(getattr(tok, "is_fast", False)),
        pad_token=str(tok.pad_token), pad_token_id=tok.pad_token_id,
        eos_token=str(tok.eos_token), eos_token_id=tok.eos_token_id,
        unk_token=str(tok.unk_token), unk_token_id=tok.unk_token_id,
        bos_token=None if tok.bos_token is None else str(tok.bos_token), bos_token_id=tok.bos_token_id,
        vocab_size=tok.vocab_size, len_tokenizer=len(tok),
        padding_side=tok.padding_side, truncation_side=tok.truncation_side,
        model_max_length=tok.model_max_length,
        model_input_names=list(tok.model_input_names),
        default_call_returns=returned_keys,
        call="tokenizer(prompts, padding='max_length', max_length=64, truncation=True)"
             " (+ return_attention_mask=True for attention_mask)",
        build=tok_build,
    )
    if spec["kind"] == "siglip1":
        slow = SiglipTokenizer.from_pretrained(str(d))
        sp = spm.SentencePieceProcessor(model_file=str(d / "spiece.model"))
        cases = [tokenizer_case_a(tok, slow, sp, t) for t in TOKENIZER_CASES]
        tok_info["slow_siglip_tokenizer_class"] = type(slow).__name__
        tok_info["do_lower_case"] = bool(getattr(tok, "do_lower_case", None))
        tok_info["legacy"] = getattr(tok, "legacy", None)
        tok_info["spiece"] = spiece_description(spiece_bytes)
        tok_info["attention_mask_note"] = (
            "pad and eos are both </s> (id 1), so the mask cannot be rebuilt from the ids with "
            "ids != pad_id: it is 1 for the real tokens up to and including the first appended </s>")
        tok_info["pipeline"] = [
            "SiglipTokenizer.tokenize: text = '\u2581' + text.replace('\u2581', ' '); split out special "
            "tokens (</s>, <unk>; the trie matches them literally)",
            "per chunk, canonicalize_text: lower(); remove string.punctuation (ASCII only); "
            "re.sub(r'\\s+', ' '); strip()",
            "sp.encode('<unk>' + chunk) and drop the first len(sp.encode('<unk>')) pieces (the leading "
            "'\u2581' of the first chunk and add_dummy_prefix give one '\u2581' before the first word)",
            "drop a lone leading '\u2581' piece if a special token follows it",
            "append </s> (id 1) unless the ids already end with it; pad with </s> (pad_token) on the "
            "right; truncation keeps 63 ids + </s>",
        ]
    else:
        raw = Tokenizer.from_file(str(d / "tokenizer.json"))
        cases = [tokenizer_case_b(tok, raw, t) for t in TOKENIZER_CASES]
        tj = json.loads((d / "tokenizer.json").read_text())
        bt = tok.backend_tokenizer
        tok_info["tokenizer_json"] = OrderedDict(
            normalizer=tj["normalizer"], pre_tokenizer=tj["pre_tokenizer"],
            post_processor=tj["post_processor"], decoder=tj["decoder"],
            model={k: v for k, v in tj["model"].items() if k not in ("vocab", "merges")},
            added_tokens=tj["added_tokens"], truncation=tj["truncation"], padding=tj["padding"])
        tok_info["loaded_backend_pipeline"] = OrderedDict(
            normalizer=repr(bt.normalizer), pre_tokenizer=repr(bt.pre_tokenizer),
            post_processor=repr(bt.post_processor), decoder=repr(bt.decoder))
        tok_info["tokenizer_config"] = json.loads((d / "tokenizer_config.json").read_text())
        tok_info["add_bos_token_property"] = bool(getattr(tok, "add_bos_token", None))
        tok_info["add_eos_token_property"] = bool(getattr(tok, "add_eos_token", None))
        tok_info["eos_appended_by"] = (
            "tokenizer.json's post_processor (TemplateProcessing '$A <eos>'). transformers 5 pops "
            "add_bos_token / add_eos_token from tokenizer_config.json whenever a tokenizer.json exists "
            "(so the properties read False); they are kept in tokenizer_config.json as the hub has them")
        prompt_raw = [raw.encode(p).ids for p in PROMPTS]
        tok_info["raw_tokenizer_json_equal_on_prompts"] = all(
            r[:MAX_LEN - 1] == pr["ids_unpadded"][:MAX_LEN - 1] for r, pr in zip(prompt_raw, prompts))
        tok_info["pipeline"] = [
            "normalizer Replace(' ' -> '\u2581'); no lower-casing, no NFKC, no dummy prefix",
            "no pre-tokenizer (transformers' GemmaTokenizer rebuilds the pipeline with "
            "Split(' ', merged_with_previous), a no-op after the normalizer)",
            "BPE with byte_fallback: characters not in the vocab become <0xXX> pieces (UTF-8 bytes)",
            "special added tokens (<pad> <eos> <bos> <unk> <mask>) are matched literally in the text",
            "post-processor appends <eos> (id 1); pad with <pad> (id 0) on the right; truncation "
            "keeps 63 ids + <eos>",
        ]

    info = OrderedDict(
        model=name,
        kind={"siglip1": "SigLIP 1 (google/siglip-base-patch16-224 layout)",
              "siglip2": "SigLIP 2 fixed resolution (google/siglip2-base-patch16-224 layout)"}[spec["kind"]],
        files=sorted(p.name for p in d.iterdir() if p.name not in ("reference.json",)) + ["reference.json"],
        versions=versions(),
        loaded_with=f"SiglipModel.from_pretrained('tests/fixtures/siglip/{name}') (eval, float32)",
        attn_implementation=attn_impl,
        torch_num_threads=torch.get_num_threads(),
        seed=spec["seed"],
        config=json.loads((d / "config.json").read_text()),
        preprocessor_config=json.loads((d / "preprocessor_config.json").read_text()),
        image_processor_classes=dict(pil=type(proc).__name__, auto=type(auto_proc).__name__),
        dims=OrderedDict(
            vision_hidden=v_cfg["hidden_size"], vision_layers=v_cfg["num_hidden_layers"],
            vision_heads=v_cfg["num_attention_heads"], vision_mlp=v_cfg["intermediate_size"],
            patch_size=patch, image_size=size, grid=[grid, grid], num_patches=grid * grid,
            text_hidden=t_cfg["hidden_size"], text_layers=t_cfg["num_hidden_layers"],
            text_heads=t_cfg["num_attention_heads"], text_mlp=t_cfg["intermediate_size"],
            text_projection=t_cfg["projection_size"], max_position_embeddings=MAX_LEN,
            vocab_size=vocab_size, hidden_act=COMMON["hidden_act"], layer_norm_eps=COMMON["layer_norm_eps"],
            head_mlp=v_cfg["intermediate_size"],
        ),
        model_notes=[
            "vision: conv patch embedding (with bias) -> + position_embedding (no CLS) -> encoder "
            "(pre-LN blocks) -> post_layernorm -> head (attention pool with probe, 1 query)",
            "head: MultiheadAttention(probe, x, x) with in_proj_weight rows [0:H) q, [H:2H) k, "
            "[2H:3H) v, then out_proj; y + mlp(layernorm(y)); output row 0",
            "text: token + position embedding -> encoder WITHOUT causal mask (bidirectional) -> "
            "final_layer_norm -> head Linear at the LAST position (index 63, usually padding)",
            "logits_per_image = exp(logit_scale) * cos(image, text) + logit_bias; probs = sigmoid",
            "attention scale head_dim ** -0.5; gelu_pytorch_tanh = GELU tanh approximation",
        ],
        logit_scale=float(scale.item()), exp_logit_scale=float(scale.exp().item()),
        logit_bias=float(bias.item()),
        tokenizer=tok_info,
        prompts=prompts,
        tokenizer_cases=cases,
        preprocessing=OrderedDict(
            image="tests/fixtures/parity/images/wide.png",
            image_mode=img.mode,
            original=[img.width, img.height],
            resized=[size, size],
            crop=None,
            steps=["convert('RGB')",
                   f"PIL Image.resize(({size}, {size}), BICUBIC) on the uint8 image (aspect ratio NOT kept, no crop)",
                   "float32 / 255 (rescale_factor 1/255)",
                   "(x - 0.5) / 0.5 per channel", "HWC -> CHW, batch of 1"],
            replay_equal=True,
        ),
        weight_keys=keys,
        tensors={k: list(v.shape) for k, v in ref.items()},
        self_checks=OrderedDict(
            reload_bit_identical=True,
            pil_replay_vs_pixel_values=g3(d_replay),
            torchvision_backend_vs_pil_pixel_values=g3(d_torchvision),
            get_image_features_vs_vision_pooler=g3(d_img_pool),
            get_image_features_vs_head_of_vision_hidden=g3(d_img_head),
            image_dense_vs_explicit_formula=g3(d_dense),
            text_tokens_last_vs_text_embeds=g3(d_last),
            get_text_features_vs_text_embeds=g3(d_get_text),
            logits_vs_exp_scale_cos_plus_bias=g3(d_logits),
            logits_per_text_is_transpose=d_logits_t == 0.0,
            model_output_embeds_are_normalised=g3(max(d_out_img, d_out_txt)),
            text_embeds_vs_text_embeds_masked=g3(d_masked),
            text_embeds_vs_text_embeds_masked_per_prompt=d_masked_rows,
            eager_attention_vs_references=eager_diffs,
            cosines=[g3(x) for x in cos[0].tolist()],
            logits_per_image=[g3(x) for x in logits[0].tolist()],
        ),
    )
    (d / "reference.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {sum(v.numel() for v in sd.values())} params, vocab {vocab_size}, "
          f"tokenizer {type(tok).__name__}, attn {attn_impl}, |text - masked| {g3(d_masked)}, "
          f"logits {[round(x, 4) for x in logits[0].tolist()]}")


def main() -> None:
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        build(name, spec)


if __name__ == "__main__":
    sys.exit(main())
