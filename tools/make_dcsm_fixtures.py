#!/usr/bin/env python3
"""Generate the DCSM-scorer parity fixtures for clipscope's Rust tests.

Uses ``tools/dcsm_reference.py`` (our PyTorch re-implementation of the DCSM
scorer of "Is CLIP ideal? No. Can we fix it? Yes!", ICCV'25) on small random
inputs and writes ``tests/fixtures/dcsm/``:

    scorer.safetensors     random Scorer, R = 17 rows (CLS + 4x4 patches), C = 30:
                             conv1.weight (4,1,3,3)  conv1.bias (4,)
                             conv2.weight (4,4,3,3)  conv2.bias (4,)
                             fc1.weight (128,2040)   fc1.bias (128,)
                             fc2.weight (1,128)      fc2.bias (1,)
                             functional_embeddings (11,17)
    scorer.json            {"mode", "rows", "columns", "functional_words", "pad_id",
                            "zscore", "std"}
    reference.safetensors  float32 inputs and expected outputs (K = 5 captions):
                             maps               (K,17,30)  raw input maps, U[-0.3, 0.5)
                             cnn_only.scores    (K,)       CNN applied straight to `maps`
                                                           (no replacement, no z-score)
                             <mode>.replaced    (K,17,30)  after functional-word columns
                             <mode>.zscored     (K,17,30)  after the global z-score
                             <mode>.mean        ()         z-score mean
                             <mode>.std         ()         z-score std (unbiased)
                             <mode>.scores      (K,)       CNN outputs
                           for <mode> in paper, aligned, insert ("insert" = the
                           reference demo's eval_simple.py behaviour, optional)
    reference.json         captions, words, token ids (30, EOS-padded), word ->
                           first-token columns, replaced columns per mode, notes
    converted/             converter test (tools/convert_dcsm_checkpoint.py):
      scorer.safetensors, scorer.json   converted from a checkpoint-shaped random
                                        .pt (written to /tmp, not committed)
      reference.safetensors             maps, paper.replaced, paper.zscored,
                                        paper.scores computed by the ORIGINAL
                                        torch objects loaded from that .pt
      reference.json                    captions and the .pt key layout

Run from the repository root:

    python tools/make_dcsm_fixtures.py

Weights: PyTorch default init (fc2.weight x20 so scores spread O(1)); the
fixture table is U[0.6, 1.0) (far from the maps' range, so a wrong column is
obvious), the converter test's table uses the reference's own initialisation
((normalize(N(0,1) row) + 1) / 3).

Deterministic (fixed seeds, single-threaded torch); the tokenizer is read from
the repository's assets/clip-tokenizer/tokenizer.json (override: CLIP_TOKENIZER_JSON).
The script re-checks everything it writes (reload, independent float64 NumPy
CNN, hand-written expected columns).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import dcsm_reference as dr  # noqa: E402

ROOT = TOOLS.parent
OUT = ROOT / "tests" / "fixtures" / "dcsm"
TOKENIZER_JSON = os.environ.get("CLIP_TOKENIZER_JSON", str(ROOT / "assets" / "clip-tokenizer" / "tokenizer.json"))
FAKE_PT = Path(os.environ.get("DCSM_FAKE_CKPT", Path(tempfile.gettempdir()) / "dcsm_fake_release.pt"))

ROWS = 17  # CLS + 4x4 patches
COLS = dr.TEXT_COLUMNS
CAPTIONS = [
    "a red circle above a blue square",
    "a dog without a collar",
    # 'not' at word 0 (paper overwrites the BOS column), repeated 'not' (first only), 3 words
    "not a cat that is big and not small",
    # 'xylophone' is 3 BPE pieces (xy lo phone): shifts 'left' in aligned mode
    "a small xylophone left of a cross",
    # nothing matches: case-sensitive ('No', 'Left') and punctuation ('right.') block it
    "No photo, Left or right.",
]
# Hand-checked expectations: caption -> {word: (paper column, aligned column)}
EXPECTED = [
    {"above": (3, 4)},
    {"without": (2, 3)},
    {"big": (5, 6), "not": (0, 1), "small": (8, 9)},
    {"left": (3, 6), "small": (1, 2)},
    {},
]
SEED_SCORER, SEED_TABLE, SEED_MAPS, SEED_CKPT = 1101, 1102, 1103, 1104
FC2_GAIN = 20.0  # fc2.weight is PyTorch's default init times this


def tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=TOKENIZER_JSON,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def numpy_scores(maps: np.ndarray, sd: dict) -> np.ndarray:
    """Independent float64 CNN: explicit 3x3 zero-padded cross-correlation."""
    w1, b1 = sd["conv1.weight"].double().numpy(), sd["conv1.bias"].double().numpy()
    w2, b2 = sd["conv2.weight"].double().numpy(), sd["conv2.bias"].double().numpy()
    f1w, f1b = sd["fc1.weight"].double().numpy(), sd["fc1.bias"].double().numpy()
    f2w, f2b = sd["fc2.weight"].double().numpy(), sd["fc2.bias"].double().numpy()

    def conv(x, w, b):  # x (cin, H, W)
        cin, h, wd = x.shape
        xp = np.zeros((cin, h + 2, wd + 2))
        xp[:, 1:-1, 1:-1] = x
        y = np.zeros((w.shape[0], h, wd))
        for o in range(w.shape[0]):
            acc = np.full((h, wd), b[o])
            for c in range(cin):
                for dy in range(3):
                    for dx in range(3):
                        acc += w[o, c, dy, dx] * xp[c, dy : dy + h, dx : dx + wd]
            y[o] = acc
        return y

    out = []
    for m in maps.astype(np.float64):
        h = np.maximum(conv(m[None], w1, b1), 0)
        h = np.maximum(conv(h, w2, b2), 0)
        h = np.maximum(f1w @ h.reshape(-1) + f1b, 0)
        out.append((f2w @ h + f2b)[0])
    return np.array(out)


def check_close(name, got: torch.Tensor, want, tol=2e-5):
    want = torch.as_tensor(np.asarray(want), dtype=torch.float64)
    err = (got.double() - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= tol * scale, f"{name}: max err {err}"
    return err


def run_modes(scorer: dr.Scorer, maps, starts):
    out = {}
    with torch.no_grad():
        for mode in dr.MODES:
            r = scorer.score(maps, CAPTIONS, mode, starts)
            out[mode] = r
    return out


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    tok = tokenizer()

    # ---- tokens and word -> column tables -------------------------------
    enc = tok(CAPTIONS, padding="max_length", max_length=COLS, truncation=True)
    token_ids = [list(map(int, ids)) for ids in enc["input_ids"]]
    starts = [dr.word_token_starts(c, tok) for c in CAPTIONS]
    for c, ids, st in zip(CAPTIONS, token_ids, starts):
        assert len(ids) == COLS and ids[0] == dr.BOS_ID and ids[-1] == dr.PAD_ID
        # cross-check the per-word counts against the whole-caption offsets
        full = tok(c, return_offsets_mapping=True, add_special_tokens=False)
        offs = [o[0] for o in full["offset_mapping"]]
        pos = 0
        for w, s in zip(dr.caption_words(c), st):
            if w:
                assert offs.index(pos) + 1 == s, (c, w, s)
            pos += len(w) + 1
    token_strings = [tok.convert_ids_to_tokens(ids) for ids in token_ids]

    # ---- random scorer, table and maps ------------------------------------
    torch.manual_seed(SEED_SCORER)
    scorer = dr.Scorer(rows=ROWS, columns=COLS).eval()
    with torch.no_grad():  # PyTorch init gives scores ~0.05; spread them to O(1)
        scorer.fc2.weight.mul_(FC2_GAIN)
    g = torch.Generator().manual_seed(SEED_TABLE)
    # U[0.6, 1.0): well away from the maps' range so a wrong column is obvious
    table = torch.rand(len(dr.FUNCTIONAL_WORDS), ROWS, generator=g) * 0.4 + 0.6
    scorer.functional_embeddings.copy_(table)
    g = torch.Generator().manual_seed(SEED_MAPS)
    maps = torch.rand(len(CAPTIONS), ROWS, COLS, generator=g) * 0.8 - 0.3
    assert scorer.cnn_parameter_count() == dr.parameter_count(ROWS, COLS) == 261_565
    assert dr.parameter_count(197, 30) == 3_026_365

    res = run_modes(scorer, maps, starts)

    # ---- checks -----------------------------------------------------------
    for k, exp in enumerate(EXPECTED):
        for mode, j in (("paper", 0), ("aligned", 1)):
            got = {h["word"]: h["column"] for h in res[mode]["hits"][k]}
            assert got == {w: v[j] for w, v in exp.items()}, (CAPTIONS[k], mode, got)
            for w, col in got.items():
                vec = table[dr.FUNCTIONAL_WORDS.index(w)]
                assert torch.equal(res[mode]["replaced"][k, :, col], vec)
            untouched = [c for c in range(COLS) if c not in got.values()]
            assert torch.equal(res[mode]["replaced"][k][:, untouched], maps[k][:, untouched])
    sd = {k: v for k, v in scorer.state_dict().items() if k != "functional_embeddings"}
    with torch.no_grad():
        cnn_only = scorer(maps)
    check_close("cnn_only", cnn_only, numpy_scores(maps.numpy(), sd))
    for mode, r in res.items():
        z = r["replaced"].double().numpy()
        zz = (z - z.mean()) / z.std(ddof=1)
        check_close(f"{mode}.zscored", r["zscored"], zz)
        check_close(f"{mode}.scores", r["scores"], numpy_scores(r["zscored"].numpy(), sd))
    # the modes must be distinguishable wherever a replacement moves
    sp, sa = res["paper"]["scores"], res["aligned"]["scores"]
    for k in range(len(CAPTIONS) - 1):
        assert abs(sp[k] - sa[k]) > 1e-3, (k, sp[k], sa[k])

    # ---- write ------------------------------------------------------------
    save_file(
        {k: v.contiguous() for k, v in scorer.state_dict().items()},
        str(OUT / "scorer.safetensors"),
        metadata={"format": "pt"},
    )
    scorer_cfg = {
        "mode": "aligned",
        "rows": ROWS,
        "columns": COLS,
        "functional_words": list(dr.FUNCTIONAL_WORDS),
        "pad_id": dr.PAD_ID,
        "zscore": "global",
        "std": "unbiased",
    }
    (OUT / "scorer.json").write_text(json.dumps(scorer_cfg, indent=2) + "\n")

    ref = OrderedDict()
    ref["maps"] = maps
    ref["cnn_only.scores"] = cnn_only
    for mode, r in res.items():
        ref[f"{mode}.replaced"] = r["replaced"]
        ref[f"{mode}.zscored"] = r["zscored"]
        ref[f"{mode}.mean"] = r["replaced"].mean().reshape(())
        ref[f"{mode}.std"] = r["replaced"].std().reshape(())
        ref[f"{mode}.scores"] = r["scores"]
    ref = {k: v.detach().to(torch.float32).contiguous() for k, v in ref.items()}
    save_file(ref, str(OUT / "reference.safetensors"), metadata={"format": "pt"})

    info = {
        "about": "DCSM scorer parity fixture; see tools/make_dcsm_fixtures.py and tools/dcsm_reference.py",
        "captions": CAPTIONS,
        "words": [dr.caption_words(c) for c in CAPTIONS],
        "token_ids": token_ids,
        "token_strings": token_strings,
        "word_token_starts": starts,
        "functional_words": list(dr.FUNCTIONAL_WORDS),
        "replaced": {
            mode: [
                [{k: h[k] for k in ("word", "table_index", "word_index", "column")} for h in hits]
                for hits in res[mode]["hits"]
            ]
            for mode in dr.MODES
        },
        "rows": ROWS,
        "columns": COLS,
        "pad_id": dr.PAD_ID,
        "zscore": "global over all K*R*C elements of the call, unbiased std (N-1), no epsilon",
        "mode_notes": {
            "paper": "column = word index in caption.split(' ') (reference training/run_evals)",
            "aligned": "column = 1 + BPE tokens of the preceding words; skipped if >= columns-1",
            "insert": "reference demo eval_simple.py: insert at word index, shift right, drop last column",
        },
        "seeds": {"scorer": SEED_SCORER, "table": SEED_TABLE, "maps": SEED_MAPS, "checkpoint": SEED_CKPT},
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    (OUT / "reference.json").write_text(json.dumps(info, indent=1) + "\n")

    # reload check
    back = load_file(str(OUT / "reference.safetensors"))
    s2 = dr.Scorer(ROWS, COLS).eval()
    s2.load_state_dict(load_file(str(OUT / "scorer.safetensors")))
    for mode in dr.MODES:
        with torch.no_grad():
            r = s2.score(back["maps"], CAPTIONS, mode, starts)
        assert torch.equal(r["scores"], back[f"{mode}.scores"]), mode
        assert torch.equal(r["zscored"], back[f"{mode}.zscored"]), mode

    make_converted(maps)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    for mode in dr.MODES:
        print(f"  {mode:8s} scores", [round(float(x), 5) for x in res[mode]["scores"]])
    return 0


def make_converted(maps: torch.Tensor) -> None:
    """Checkpoint-shaped random .pt -> converter -> parity scores from the .pt."""
    from convert_dcsm_checkpoint import CNN_KEYS

    out = OUT / "converted"
    torch.manual_seed(SEED_CKPT)
    net = dr.Scorer(rows=ROWS, columns=COLS)
    with torch.no_grad():
        net.fc2.weight.mul_(FC2_GAIN)
    emb = nn.Embedding(len(dr.FUNCTIONAL_WORDS), ROWS)
    with torch.no_grad():  # the reference's own initial table
        emb.weight = nn.Parameter(
            (torch.nn.functional.normalize(emb.weight, p=2, dim=1) + 1) / 3
        )
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    model_state = OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items() if k in CNN_KEYS)
    fake_clip = OrderedDict(
        [("logit_scale", torch.tensor(4.6052)), ("text_projection.weight", torch.randn(8, 8))]
    )
    ckpt = {  # key layout of src/util/util.py save_train_output
        "epoch": 26,
        "model_state_dict": model_state,
        "optimizer_state_dict": opt.state_dict(),
        "clip_state_dict": fake_clip,
        "clip_text_tokenizer": tokenizer(),
        "train_loss": [1.5, 1.2],
        "valid_loss": [],
        "grads": {},
        "external_logic_token_embeddings": emb,
        "learned_lookup": None,
    }
    FAKE_PT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, FAKE_PT)

    # run the converter through its command line
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "convert_dcsm_checkpoint.py"), str(FAKE_PT), str(out), "--columns", str(COLS)],
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stderr)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, "converter failed"
    assert "restricted" in proc.stdout, "expected the restricted-unpickler fallback"

    # the ORIGINAL objects, fully unpickled (we wrote this file ourselves)
    orig = torch.load(FAKE_PT, map_location="cpu", weights_only=False)
    assert isinstance(orig["external_logic_token_embeddings"], nn.Embedding)
    cnn = dr.Scorer(rows=ROWS, columns=COLS).eval()
    missing = cnn.load_state_dict(orig["model_state_dict"], strict=False).missing_keys
    assert missing == ["functional_embeddings"], missing
    emb0 = orig["external_logic_token_embeddings"]
    with torch.no_grad():
        # replacement with vectors fetched the way the reference does: emb(tensor([i]))
        table = torch.cat([emb0(torch.tensor([i])) for i in range(len(dr.FUNCTIONAL_WORDS))])
        replaced, hits = dr.replace_functional_columns(maps, CAPTIONS, table, "paper")
        z = dr.global_zscore(replaced)
        scores = cnn(z)

    # the converted file must give the same numbers
    conv = dr.Scorer(rows=ROWS, columns=COLS).eval()
    conv.load_state_dict(load_file(str(out / "scorer.safetensors")))
    cfg = json.loads((out / "scorer.json").read_text())
    assert cfg["mode"] == "paper" and cfg["rows"] == ROWS and cfg["columns"] == COLS
    assert cfg["functional_words"] == list(dr.FUNCTIONAL_WORDS)
    with torch.no_grad():
        again = conv.score(maps, CAPTIONS, "paper")
    assert torch.equal(again["scores"], scores)

    ref = {
        "maps": maps,
        "paper.replaced": replaced,
        "paper.zscored": z,
        "paper.scores": scores,
    }
    save_file({k: v.to(torch.float32).contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"),
              metadata={"format": "pt"})
    info = {
        "about": "scores of the original torch objects loaded from a checkpoint-shaped random .pt "
        "(not committed) on ../reference.safetensors maps, mode 'paper'",
        "captions": CAPTIONS,
        "checkpoint_keys": list(ckpt.keys()),
        "replaced": [[{k: h[k] for k in ("word", "table_index", "word_index", "column")} for h in hh] for hh in hits],
        "seed": SEED_CKPT,
    }
    (out / "reference.json").write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
