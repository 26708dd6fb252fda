#!/usr/bin/env python3
"""Independent PyTorch re-implementation of the DCSM scorer (reference for clipscope).

Purpose
-------
The ICCV'25 paper "Is CLIP ideal? No. Can we fix it? Yes!" (Kang, Song,
Gkioxari, Perona) scores an image/caption pair with a small CNN that reads the
*dense cosine similarity map* (DCSM) between every image token and every text
token of a frozen CLIP ViT-B/16.  clipscope ports that scorer to candle; this
module is the Python yardstick the Rust port is tested against (see
``tools/make_dcsm_fixtures.py`` and ``tools/convert_dcsm_checkpoint.py``).

It was written from a description of the method, not copied from the authors'
code (GitHub ``Raphoo/DCSM_Ideal_CLIP``, commit 380a19b).  The details below
were then checked by reading that repository; file/function names refer to it.

Pipeline (per image, K candidate captions scored together)
----------------------------------------------------------
1. Image rows: all 1 + 14*14 = 197 vision tokens (CLS first), taken from the
   vision encoder's ``last_hidden_state`` -> ``post_layernorm`` ->
   ``visual_projection`` -> L2-normalised.  (training/train.py ``run_training``,
   evaluating/eval_simple.py ``get_dcsm_scores``, evaluating/run_evals.py
   ``evaluate_patch_model``.)
2. Text columns: ``tokenizer(texts, padding="max_length", max_length=30,
   truncation=True)``; the CLIP tokenizer pads with ``<|endoftext|>`` (49407)
   and truncation keeps BOS ... EOS (28 word tokens at most).  The whole
   tokenizer output *including the attention mask* goes to ``text_model``, so
   pad positions are computed with the pad keys masked out (each pad column
   attends to BOS..first EOS only, never to itself or other pads).  Columns
   come from ``last_hidden_state`` (already after ``final_layer_norm`` in HF)
   -> ``text_projection`` -> L2-normalised.  All 30 columns are kept.
3. ``map[i, t] = <image_row_i, text_col_t>``; shape (n_images, K, 197, 30)
   (einsum "bqie,lpte->bpit": rows are image tokens, columns text tokens; not
   transposed before the CNN).
4. Functional words (``replace_functional_columns``).  The table has one
   197-vector per word of ``FUNCTIONAL_WORDS`` (this order; an
   ``nn.Embedding(11, 197)``).  For each caption, ``caption.split(" ")`` is
   searched for each word *in table order*; exact, case-sensitive match (no
   lowercasing, punctuation not stripped: "Not", "left," and "left." do not
   match; "left" in "to the left of" does); only the first occurrence counts;
   several different functional words each replace their own column.  The
   column replaced is the *word index* in the split caption -- because column
   0 is BOS this is (for single-token words) the column of the token before
   the functional word, and a functional word at word index 0 overwrites the
   BOS column.  Replacement happens on the raw cosine map, *before* the
   z-score.  (train.py ``run_training`` and run_evals.py
   ``evaluate_patch_model``; the latter truncates back to 30 columns, which
   makes a word index >= 30 a no-op -- train.py would crash there.)
5. Global z-score (``global_zscore``): one mean and one std over the whole
   (n_images, K, 197, 30) tensor; ``torch.Tensor.std()`` default, i.e. the
   *unbiased* (N-1) estimator; no epsilon.  (``standardize`` in
   util/models_and_dataloaders.py and training/training_util.py.)  Note the
   consequence: a caption's score depends on which other captions (and
   images) are scored in the same call.
6. CNN (``Scorer``; reference class ``CrossModalConvNetwork`` in
   util/models_and_dataloaders.py, hidden_dim=128): each (197, 30) map as a
   1-channel image -> ``conv1`` Conv2d(1, 4, 3x3, pad 1) -> ReLU ->
   ``conv2`` Conv2d(4, 4, 3x3, pad 1) -> ReLU -> flatten in (channel, row,
   column) order -> ``fc1`` Linear(4*197*30 = 23640, 128) -> ReLU -> ``fc2``
   Linear(128, 1).  Raw output, no sigmoid.  Dropout2d after each conv ReLU,
   Dropout after the fc1 ReLU and (oddly) Dropout on the fc2 output; all are
   inactive in eval mode and have no parameters.  State-dict names:
   conv1.weight (4,1,3,3), conv1.bias (4,), conv2.weight (4,4,3,3),
   conv2.bias (4,), fc1.weight (128, 4*R*C), fc1.bias (128,),
   fc2.weight (1,128), fc2.bias (1,).  Parameters:
   40 + 148 + (4*R*C*128 + 128) + 129 = 3,026,365 for R=197, C=30.

Modes of ``replace_functional_columns``
---------------------------------------
``paper``   the reference behaviour above (column = word index), bit-exact.
``aligned`` the column of the functional word's own first BPE token:
            1 + number of BPE tokens of the words before it
            (``word_token_starts``); skipped if that token was truncated away
            (column >= C-1).
``insert``  what the demo function evaluating/eval_simple.py
            ``get_dcsm_scores`` (used by notebooks/DCSM_eval.ipynb) actually
            does: it *inserts* the vector at the word index and shifts the
            rest right, dropping the last column (``[:idx], v, [idx:-1]``),
            applied sequentially in table order.  This differs from training
            and from run_evals.py; kept only to document/reproduce the demo.

Needs torch; ``word_token_starts`` needs a Hugging Face tokenizer object.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

FUNCTIONAL_WORDS: tuple[str, ...] = (
    "above",
    "below",
    "left",
    "right",
    "small",
    "big",
    "not",
    "no",
    "without",
    "but",
    "absent",
)
TEXT_COLUMNS = 30
PAD_ID = 49407  # <|endoftext|>, also the CLIP tokenizer's pad token
BOS_ID = 49406
HIDDEN = 128
CONV_CHANNELS = HIDDEN // 32  # = 4 in the reference
MODES = ("paper", "aligned", "insert")


def parameter_count(rows: int, columns: int = TEXT_COLUMNS, hidden: int = HIDDEN) -> int:
    """Number of CNN parameters (the functional-word table not included)."""
    ch = hidden // 32
    conv1 = ch * 1 * 9 + ch
    conv2 = ch * ch * 9 + ch
    fc1 = ch * rows * columns * hidden + hidden
    fc2 = hidden + 1
    return conv1 + conv2 + fc1 + fc2


def caption_words(caption: str) -> list[str]:
    """The reference's word split: ``caption.split(" ")`` (single spaces, no
    lowercasing, punctuation stays attached, empty strings for double spaces)."""
    return caption.split(" ")


def word_token_starts(caption: str, tokenizer) -> list[int]:
    """Column of each word's first BPE token in the padded sequence.

    Word ``i`` of ``caption.split(" ")`` starts at column
    ``1 + sum(n_tokens(word_j) for j < i)`` (column 0 is BOS); each word is
    tokenised on its own without special tokens (the CLIP pre-tokenizer never
    merges across a space, so this equals tokenising the whole caption).
    Values may exceed the text window; callers must check truncation.
    """
    starts = []
    col = 1
    for w in caption_words(caption):
        starts.append(col)
        if w:
            col += len(tokenizer(w, add_special_tokens=False)["input_ids"])
    return starts


def functional_hits(
    caption: str,
    mode: str,
    token_word_starts: Sequence[int] | None = None,
    columns: int = TEXT_COLUMNS,
    words: Sequence[str] = FUNCTIONAL_WORDS,
) -> list[dict]:
    """The replacements ``replace_functional_columns`` applies to one caption,
    in application (table) order: dicts with ``word``, ``table_index``,
    ``word_index`` and ``column`` (for ``insert``: the insertion position)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}, expected one of {MODES}")
    split = caption_words(caption)
    hits = []
    for table_index, w in enumerate(words):
        if w not in split:
            continue
        word_index = split.index(w)  # first occurrence only
        if mode == "aligned":
            if token_word_starts is None:
                raise ValueError("mode 'aligned' needs token_word_starts")
            col = int(token_word_starts[word_index])
            if col > columns - 2:  # truncated away (column columns-1 is EOS)
                continue
        else:
            col = word_index
            if col >= columns:  # replace-then-truncate is a no-op in run_evals.py
                continue
        hits.append(
            {"word": w, "table_index": table_index, "word_index": word_index, "column": col}
        )
    return hits


def replace_functional_columns(
    maps: torch.Tensor,
    captions: Sequence[str],
    table: torch.Tensor,
    mode: str = "paper",
    token_word_starts: Sequence[Sequence[int]] | None = None,
    words: Sequence[str] = FUNCTIONAL_WORDS,
) -> tuple[torch.Tensor, list[list[dict]]]:
    """Write functional-word vectors into the caption columns of DCSMs.

    maps:   (..., K, R, C) raw cosine maps, K == len(captions) (leading dims,
            e.g. images, are broadcast over: every image gets the same vector).
    table:  (len(words), R) -- row j is the R-vector of ``words[j]``.
    mode:   'paper', 'aligned' or 'insert' (see the module docstring).
    token_word_starts: per caption, ``word_token_starts(caption, tok)``;
            required for 'aligned' only.
    Returns (new maps, per-caption list of ``functional_hits`` dicts).
    The input is not modified.
    """
    if maps.dim() < 3:
        raise ValueError("maps must be (..., K, R, C)")
    k_dim, rows, columns = maps.shape[-3:]
    if k_dim != len(captions):
        raise ValueError(f"{len(captions)} captions for {k_dim} maps")
    if table.shape != (len(words), rows):
        raise ValueError(f"table {tuple(table.shape)} != ({len(words)}, {rows})")
    table = table.to(maps.dtype)
    out = []
    all_hits = []
    for k, cap in enumerate(captions):
        starts = None if token_word_starts is None else token_word_starts[k]
        hits = functional_hits(cap, mode, starts, columns, words)
        m = maps[..., k, :, :].clone()
        for h in hits:
            vec = table[h["table_index"]]  # (R,)
            col = h["column"]
            if mode == "insert":
                shape = list(m.shape)
                shape[-1] = 1
                v = vec.reshape(*([1] * (m.dim() - 2)), rows, 1).expand(shape)
                m = torch.cat([m[..., :col], v, m[..., col:-1]], dim=-1)
            else:
                m[..., :, col] = vec
        out.append(m)
        all_hits.append(hits)
    return torch.stack(out, dim=-3), all_hits


def global_zscore(maps: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over *all* elements; unbiased std (N-1), no epsilon."""
    return (maps - maps.mean()) / maps.std(correction=1)


class Scorer(nn.Module):
    """The DCSM CNN, generic over rows R (image tokens) and columns C (text).

    State dict: the reference's CNN names (conv1/conv2/fc1/fc2 .weight/.bias)
    plus the buffer ``functional_embeddings`` (len(words), R).
    ``forward`` takes already replaced and z-scored maps (..., R, C) and
    returns raw scores (...); ``score`` runs the whole post-CLIP pipeline.
    Inference only: the reference's dropout layers are omitted.
    """

    def __init__(
        self,
        rows: int = 197,
        columns: int = TEXT_COLUMNS,
        hidden: int = HIDDEN,
        words: Sequence[str] = FUNCTIONAL_WORDS,
    ):
        super().__init__()
        self.rows, self.columns, self.hidden = rows, columns, hidden
        self.words = tuple(words)
        ch = hidden // 32
        self.conv1 = nn.Conv2d(1, ch, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(ch * rows * columns, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.register_buffer("functional_embeddings", torch.zeros(len(self.words), rows))

    def cnn_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.rows, self.columns):
            raise ValueError(f"maps {tuple(x.shape)} do not end in ({self.rows}, {self.columns})")
        lead = x.shape[:-2]
        h = x.reshape(-1, 1, self.rows, self.columns)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        h = h.flatten(1)  # (N, ch*R*C), channel-major then row then column
        h = F.relu(self.fc1(h))
        return self.fc2(h).reshape(lead)

    def score(
        self,
        maps: torch.Tensor,
        captions: Sequence[str],
        mode: str = "paper",
        token_word_starts: Sequence[Sequence[int]] | None = None,
    ) -> dict:
        """Raw maps (..., K, R, C) -> dict(replaced, zscored, scores, hits)."""
        replaced, hits = replace_functional_columns(
            maps, captions, self.functional_embeddings, mode, token_word_starts, self.words
        )
        z = global_zscore(replaced)
        return {"replaced": replaced, "zscored": z, "scores": self(z), "hits": hits}

    def load_reference(self, model_state_dict: dict, table: torch.Tensor) -> None:
        """Load a reference ``model_state_dict`` (strict) and the word table."""
        self.load_state_dict({**model_state_dict, "functional_embeddings": table}, strict=True)


def reference_like_table(n_words: int, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A table drawn like the reference's initial one: N(0,1) rows,
    L2-normalised, then (v + 1) / 3.  (The reference never passes the table to
    its optimizer, so released tables are expected to keep this form.)"""
    w = torch.randn(n_words, rows, generator=generator)
    return (F.normalize(w, p=2, dim=1) + 1) / 3


__all__: Iterable[str] = [
    "FUNCTIONAL_WORDS",
    "TEXT_COLUMNS",
    "PAD_ID",
    "MODES",
    "parameter_count",
    "caption_words",
    "word_token_starts",
    "functional_hits",
    "replace_functional_columns",
    "global_zscore",
    "Scorer",
    "reference_like_table",
]
