#!/usr/bin/env python3
"""Reference text columns as the DCSM scorer reads them: prompts padded to 30 with EOS and an
attention mask, through transformers' CLIPModel (tests/fixtures/parity/tiny_gelu).

Writes tests/fixtures/parity/tiny_gelu/padded30.safetensors: `columns` (K, 30, D), projected and
L2-normalised, and `lengths` (K,). Run from the repository root with the tools/ environment.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPModel

DIR = Path("tests/fixtures/parity/tiny_gelu")
COLUMNS = 30
EOS = 49407


def main() -> None:
    ref = json.loads((DIR / "reference.json").read_text())
    model = CLIPModel.from_pretrained(DIR, dtype=torch.float32).eval()
    ids, mask, lengths = [], [], []
    for p in ref["prompts"]:
        t = p["token_ids"][:COLUMNS]
        if len(p["token_ids"]) > COLUMNS:
            t[-1] = EOS
        lengths.append(len(t))
        ids.append(t + [EOS] * (COLUMNS - len(t)))
        mask.append([1] * len(t) + [0] * (COLUMNS - len(t)))
    with torch.inference_mode():
        out = model.text_model(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)
        ).last_hidden_state
        cols = torch.nn.functional.normalize(model.text_projection(out), dim=-1)
    save_file(
        {"columns": cols.contiguous(), "lengths": torch.tensor(lengths, dtype=torch.float32)},
        DIR / "padded30.safetensors",
    )
    print("wrote", DIR / "padded30.safetensors", tuple(cols.shape))


if __name__ == "__main__":
    main()
