#!/usr/bin/env python3
"""Convert a released DCSM checkpoint (.pt) into clipscope's scorer format.

Input: the torch pickle written by the reference training code
(``Raphoo/DCSM_Ideal_CLIP``, ``src/util/util.py`` ``save_train_output``), a
dict with (at least)

    model_state_dict                 CNN state dict: conv1/conv2/fc1/fc2 .weight/.bias
    external_logic_token_embeddings  the functional-word table, pickled as a whole
                                     ``nn.Embedding(11, 197)`` *module* (also
                                     accepted: a tensor or a {"weight": tensor} dict)
    learned_lookup                   optional; if present and not None it replaces
                                     the default functional-word list (as the
                                     reference's run_evals.py does)

and, unused here, epoch, optimizer_state_dict, clip_state_dict (the frozen
CLIP weights), clip_text_tokenizer (a pickled transformers tokenizer object),
train_loss, valid_loss, grads.

Output folder:

    scorer.safetensors  conv1.weight (4,1,3,3), conv1.bias (4,), conv2.weight (4,4,3,3),
                        conv2.bias (4,), fc1.weight (128, 4*R*C), fc1.bias (128,),
                        fc2.weight (1,128), fc2.bias (1,), functional_embeddings (W, R)
                        -- all float32
    scorer.json         {"mode": "paper", "rows": R, "columns": C, "functional_words": [...],
                         "pad_id": 49407, "zscore": "global", "std": "unbiased"}

R comes from the table, C from fc1 (4*R*C inputs), so the same tool works for
any image-token count.

Loading: first ``torch.load(path, map_location="cpu", weights_only=True)``
(with ``nn.Embedding`` allow-listed).  A file written by the reference code
normally fails that, because it also pickles a transformers tokenizer object;
the tool then falls back to a *restricted* unpickler that still never runs
code from the file: tensors, storages, OrderedDict, dtypes etc. are rebuilt
with torch's own weights-only allow-list, and every other global (the
tokenizer classes, ``nn.Embedding``, ...) becomes an inert placeholder that
just records its constructor arguments and state.  The table is then read
out of the placeholder's recorded ``_parameters["weight"]``.

Usage (repository root):

    python tools/convert_dcsm_checkpoint.py dcsm_obja_ckpt.pt OUT_DIR
"""

from __future__ import annotations

import _compat_pickle
import argparse
import json
import pickle
import re
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dcsm_reference import FUNCTIONAL_WORDS, PAD_ID, parameter_count  # noqa: E402

CNN_KEYS = (
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
)


# --------------------------------------------------------------------------
# Restricted loading
# --------------------------------------------------------------------------
class Placeholder:
    """Stands in for any class/function the restricted unpickler refuses to
    import.  Accepts every construction/state and records it; runs nothing."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<placeholder {self.qualname}>"


def _allowed_globals() -> dict:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return dict(_get_allowed_globals())
    except Exception:  # pragma: no cover - very old/new torch without the helper
        import collections
        import torch._utils as tu

        out = {"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size}
        for n in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
            out[f"torch._utils.{n}"] = getattr(tu, n)
        import _codecs

        out["_codecs.encode"] = _codecs.encode
        return out


def _make_restricted_pickle_module(stubbed: set) -> types.ModuleType:
    allowed = _allowed_globals()
    cache: dict = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            # Python 2 names (protocol 2 writes e.g. __builtin__.set), mapped as
            # pickle.Unpickler.find_class does; such modules do not exist in Python 3
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            key = f"{module}.{name}"
            if key in allowed:
                return allowed[key]
            if key not in cache:
                stubbed.add(key)
                cache[key] = type(name, (Placeholder,), {"qualname": key})
            return cache[key]

    mod = types.ModuleType("restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.Pickler = pickle.Pickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.__name__ = "restricted_pickle"
    return mod


def load_checkpoint(path: str | Path, verbose: bool = True) -> tuple[dict, str]:
    """Return (checkpoint dict, how it was loaded)."""
    try:
        with torch.serialization.safe_globals([nn.Embedding]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return ckpt, "weights_only=True"
    except (pickle.UnpicklingError, RuntimeError) as e:
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        culprit = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        if verbose:
            why = f"unsupported global {culprit.group(1)}" if culprit else msg.strip()[:120]
            print(f"weights_only=True refused the file ({why});", file=sys.stderr)
            print("falling back to the restricted placeholder unpickler", file=sys.stderr)
    stubbed: set = set()
    ckpt = torch.load(
        path,
        map_location="cpu",
        weights_only=False,
        pickle_module=_make_restricted_pickle_module(stubbed),
    )
    if verbose and stubbed:
        print("not imported (placeholders): " + ", ".join(sorted(stubbed)), file=sys.stderr)
    return ckpt, "restricted"


# --------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------
def _table_tensor(obj) -> torch.Tensor:
    if isinstance(obj, nn.Embedding):
        return obj.weight.detach()
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, dict) and isinstance(obj.get("weight"), torch.Tensor):
        return obj["weight"].detach()
    if isinstance(obj, Placeholder) and isinstance(obj.state, dict):
        params = obj.state.get("_parameters")
        if isinstance(params, dict) and isinstance(params.get("weight"), torch.Tensor):
            return params["weight"].detach()
    raise ValueError(f"cannot find the functional-word table in {type(obj).__name__}")


def extract(ckpt: dict, columns: int | None = None) -> tuple[dict, dict]:
    """(tensors for scorer.safetensors, scorer.json dict) from a checkpoint dict."""
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt:
        raise ValueError("not a DCSM checkpoint: no 'model_state_dict' key")
    sd = ckpt["model_state_dict"]
    missing = [k for k in CNN_KEYS if k not in sd]
    extra = [k for k in sd if k not in CNN_KEYS]
    if missing or extra:
        raise ValueError(f"unexpected CNN state dict: missing {missing}, extra {extra}")
    if "external_logic_token_embeddings" not in ckpt:
        raise ValueError("no 'external_logic_token_embeddings' key")
    table = _table_tensor(ckpt["external_logic_token_embeddings"])

    words = list(FUNCTIONAL_WORDS)
    lookup = ckpt.get("learned_lookup")
    if lookup is not None:
        words = [str(w) for w in lookup]
    if table.dim() != 2 or table.shape[0] != len(words):
        raise ValueError(f"table shape {tuple(table.shape)} does not match {len(words)} words")
    rows = int(table.shape[1])

    t = {k: sd[k].detach().to("cpu", torch.float32).contiguous() for k in CNN_KEYS}
    ch = t["conv1.weight"].shape[0]
    hidden = t["fc1.weight"].shape[0]
    fc1_in = t["fc1.weight"].shape[1]
    if fc1_in % (ch * rows):
        raise ValueError(f"fc1 input {fc1_in} is not {ch} x {rows} x C")
    cols = fc1_in // (ch * rows)
    if columns is not None and cols != columns:
        raise ValueError(f"weights imply {cols} text columns, expected {columns}")
    expect = {
        "conv1.weight": (ch, 1, 3, 3),
        "conv1.bias": (ch,),
        "conv2.weight": (ch, ch, 3, 3),
        "conv2.bias": (ch,),
        "fc1.weight": (hidden, ch * rows * cols),
        "fc1.bias": (hidden,),
        "fc2.weight": (1, hidden),
        "fc2.bias": (1,),
    }
    for k, shp in expect.items():
        if tuple(t[k].shape) != shp:
            raise ValueError(f"{k}: shape {tuple(t[k].shape)}, expected {shp}")
    if hidden // 32 == ch and sum(v.numel() for v in t.values()) != parameter_count(rows, cols, hidden):
        raise AssertionError("parameter count mismatch")
    t["functional_embeddings"] = table.to("cpu", torch.float32).contiguous()
    config = {
        "mode": "paper",
        "rows": rows,
        "columns": int(cols),
        "functional_words": words,
        "pad_id": PAD_ID,
        "zscore": "global",
        "std": "unbiased",
    }
    return t, config


def convert(src: str | Path, out_dir: str | Path, columns: int | None = None, verbose: bool = True) -> dict:
    ckpt, how = load_checkpoint(src, verbose)
    tensors, config = extract(ckpt, columns)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "scorer.safetensors"), metadata={"format": "pt", "source": "DCSM checkpoint"})
    (out / "scorer.json").write_text(json.dumps(config, indent=2) + "\n")
    back = load_file(str(out / "scorer.safetensors"))
    for k, v in tensors.items():
        if not torch.equal(back[k], v):
            raise AssertionError(f"{k} did not round-trip")
    if verbose:
        n = sum(v.numel() for k, v in tensors.items() if k != "functional_embeddings")
        print(
            f"loaded with {how}; rows {config['rows']}, columns {config['columns']}, "
            f"{n:,} CNN parameters, {len(config['functional_words'])} functional words -> {out}"
        )
    return config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="released .pt file (torch pickle)")
    ap.add_argument("out_dir", help="folder to write scorer.safetensors + scorer.json into")
    ap.add_argument("--columns", type=int, default=None, help="assert this many text columns (30 for releases)")
    args = ap.parse_args(argv)
    convert(args.checkpoint, args.out_dir, args.columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
