"""What a shapes-world model confuses: the failure analysis of the model card, measured.

Draws validation scenes with `clipscope synth`, scores each description probe's truth and hard
negatives with `clipscope score` (plain CLIP cosine, as `clipscope eval` ranks them), and counts
the negatives that beat the truth: those with a colour the scene lacks, and those with the right
colour on a shape the scene lacks, by object size and by which shape was taken for which. With
`--family spatial` it ranks the spatial probes with the model's DCSM scorer instead (the truth
against its swapped negative, z-scored together as `clipscope eval` does) and counts the errors
by relation and by the size of the smaller object; `--maps` also splits them by whether both
shape words' maps peak on their objects and reads each relation off the two peaks' positions.

    cargo build --release
    python3 tools/confusions.py --model assets/default-model --n 200 --seed 1000
    python3 tools/confusions.py --model assets/default-model --n 300 --seed 1000 --family spatial --maps

Nothing here imports torch: the standard library, colour_prior.py's `prompt_scores` and the
clipscope binary.
"""

import argparse
import collections
import json
import os
import subprocess
import tempfile

from colour_prior import prompt_scores


def words(caption):
    """(colour, shape) of a one-object caption such as "a blue circle" or "an orange star"."""
    parts = caption.split()
    return parts[-2], parts[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument("--binary", default="target/release/clipscope")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--split", default="validation")
    ap.add_argument("--family", default="description", choices=["description", "spatial"])
    ap.add_argument("--maps", action="store_true",
                    help="with --family spatial: also split the probes by whether both shape "
                         "words' maps peak on their objects (`clipscope map` on the truth)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [args.binary, "synth", "--out", tmp, "--n", str(args.n), "--seed", str(args.seed),
             "--split", args.split],
            check=True, capture_output=True,
        )
        with open(os.path.join(tmp, "scenes.jsonl")) as f:
            scenes = [json.loads(line) for line in f]
        if args.family == "spatial":
            return spatial(args, scenes, tmp)
        probes = colour_wins = shape_wins = 0
        by_size = collections.Counter()
        sizes = collections.Counter()
        confused = collections.Counter()
        per_shape = collections.Counter()
        # By the scene around the object: alone, or with others (one of them in its colour).
        scenes_of = collections.Counter()
        wrong_in = collections.Counter()
        for s, probe in probes_of(scenes, "description"):
            probes += 1
            truth = probe["truth"]
            colour, shape = words(truth)
            obj = next(o for o in s["scene"]["objects"]
                       if o["colour"] == colour and o["shape"] == shape)
            big = size_class(obj["size"])
            sizes[big] += 1
            others = [o for o in s["scene"]["objects"] if o is not obj]
            around = ("alone" if not others else
                      "beside an object of its colour" if any(o["colour"] == colour for o in others)
                      else "beside objects of other colours")
            scenes_of[around] += 1
            missed = False
            per_shape[shape] += 1
            image = os.path.join(tmp, s["file"])
            prompts = [truth] + probe["negatives"]
            cos = dict(zip(prompts, prompt_scores(args.binary, args.model, image, prompts)))
            for neg in probe["negatives"]:
                if cos[neg] <= cos[truth]:
                    continue
                n_colour, n_shape = words(neg)
                if n_shape == shape:
                    colour_wins += 1
                else:
                    shape_wins += 1
                    by_size[big] += 1
                    confused[(shape, n_shape)] += 1
                missed = True
            wrong_in[around] += missed

    print(f"{probes} description probes ({args.split}, seed {args.seed}, model "
          f"{args.model or 'embedded'})")
    print(f"a colour the scene lacks beat the truth: {colour_wins}")
    print(f"the right colour on a shape the scene lacks beat it: {shape_wins} "
          f"({shape_wins / max(probes, 1):.1%})")
    for k in sorted(sizes):
        print(f"  {k}: {by_size[k]} of {sizes[k]}")
    print("probes with a wrong caption on top, by the scene around the object:")
    for k in sorted(scenes_of):
        print(f"  {k}: {wrong_in[k]} of {scenes_of[k]}")
    for (a, b), n in confused.most_common():
        print(f"  {a} taken for {b}: {n} of {per_shape[a]} {a} probes")


def size_class(size):
    return "large (size >= 1/4)" if size >= 0.25 else "small (size < 1/4)"


def probes_of(scenes, family):
    """(scene, probe) for every probe of `family`."""
    for s in scenes:
        for probe in s["probes"]:
            if probe["family"] == family:
                yield s, probe


def spatial(args, scenes, folder):
    right = collections.Counter()
    total = collections.Counter()
    for s, probe in probes_of(scenes, "spatial"):
        image = os.path.join(folder, s["file"])
        truth, neg = prompt_scores(args.binary, args.model, image,
                                   [probe["truth"], probe["negatives"][0]], field="dcsm_score")
        relation = next(w for w in ("left", "right", "above", "below")
                        if w in probe["truth"].split())
        smaller = size_class(min(o["size"] for o in s["scene"]["objects"]))
        keys = ["all", relation, f"smaller object {smaller}"]
        if args.maps:
            peaks, read = peak_reading(args, image, probe["truth"], relation, s["scene"], folder)
            where = ("both shape words peak on their objects" if peaks
                     else "a shape word peaks off its object")
            keys.append(where)
            # The two peaks' positions compared, instead of the scorer: what the map itself says.
            for key in ("peaks compared, all", f"peaks compared, {where}"):
                total[key] += 1
                right[key] += read
        for key in keys:
            total[key] += 1
            right[key] += truth > neg
    print(f"{total['all']} spatial probes ({args.split}, seed {args.seed}, model "
          f"{args.model or 'embedded'}), ranked by the DCSM scorer")
    for key in sorted(total, key=lambda k: (k != "all", k)):
        print(f"  {key}: {right[key]} of {total[key]} right ({right[key] / total[key]:.3f})")


def peak_reading(args, image, caption, relation, scene, folder):
    """(whether each object's shape word in `caption` has its map's highest patch on the object,
    the patch centre within the object's square grown by half a patch, as strict localisation
    asks; whether the first shape word's peak stands in `relation` to the second's)."""
    out = os.path.join(folder, "map")
    cmd = [args.binary, "map", "--image", image, "--prompt", caption, "--out", out]
    if args.model:
        cmd += ["--model", args.model]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(os.path.join(out, "map.json")) as f:
        doc = json.load(f)
    prompt = doc["prompts"][0]
    side = doc["grid"][1]
    patches = prompt["dcsm"][1:]  # row 0 is the CLS token
    labels = prompt["labels"]
    on, peaks = True, []
    for o in scene["objects"]:
        # The object's shape word: the one its colour word stands just before ("a small red
        # circle"), so two objects of one shape find their own words.
        column = next(i for i, w in enumerate(labels)
                      if w == o["shape"] and o["colour"] in labels[max(i - 2, 0):i])
        values = [row[column] for row in patches]
        py, px = divmod(max(range(len(values)), key=values.__getitem__), side)
        half = o["size"] / 2 + 0.5 / side
        on &= abs((px + 0.5) / side - o["x"]) <= half and abs((py + 0.5) / side - o["y"]) <= half
        peaks.append((column, px, py))
    # In caption order: the first object named, then the second.
    (_, ax, ay), (_, bx, by) = sorted(peaks)
    read = {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}[relation]
    return on, read


if __name__ == "__main__":
    main()
