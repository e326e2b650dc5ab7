"""A long fuzz run over model files: tens of thousands of damaged copies of one saved model, each loaded as a user
would open it. Every outcome must be a ModelFileError or the original contents exactly; a load that returns anything
else is a silent wrong model, and a crash of this process ends the run. Prints the outcomes by mutation and by kind.

    nice python benchmarks/fuzz_model_files.py --count 30000 --seed 1

The mutations are those of tests/io/test_fuzz_model_files.py (which runs a few hundred of them in every test run).
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))
from conftest import adam_state, random_weights, tiny_graph  # noqa: E402
from test_fuzz_model_files import mutate, mutate_text  # noqa: E402

from convdesigner.io import ModelFileError, load_model, save_model  # noqa: E402

BYTE_OPS = ("cut short", "flipped bits", "random run", "header byte", "block copied", "zeroed run")
KINDS = [("checksum", "checksum mismatch"), ("crash", "HDF5 crashed in the child"),
         ("did not finish", "child timed out"), ("truncated", "truncated"), ("not an HDF5", "not HDF5"),
         ("chunk", "chunk index/storage"), ("does not hold", "declared bytes missing"),
         ("claim the same bytes", "overlapping storage"), ("link", "link refused"),
         ("attribute", "attribute refused"), ("format", "format/version"), ("not valid JSON", "JSON text"),
         ("graph", "graph"), ("array", "array shape/type"), ("damaged", "HDF5 read error")]


def kind_of(message: str) -> str:
    return next((label for word, label in KINDS if word in message), "other check")


def contents() -> dict:
    graph = tiny_graph()
    weights = random_weights(graph)
    return {"graph": graph, "weights": weights, "optimizer": adam_state(weights, graph),
            "trainer": {"epoch": 2, "seed": 3, "batch_size": 8, "history": [], "best": {"epoch": 2, "loss": 0.8,
                                                                                      "wait": 0}},
            "history": [{"epoch": 1, "train_loss": 1.25}, {"epoch": 2, "train_loss": 0.75}],
            "dataset": {"name": "shapes", "input_shape": [1, 8, 8], "class_names": ["a", "b", "c"],
                        "mean": [0.5], "std": [0.25]}}


def same_model(m, c) -> bool:
    if m.graph != c["graph"] or m.dataset != c["dataset"] or m.history != c["history"] or m.trainer != c["trainer"]:
        return False
    if {b: set(a) for b, a in m.weights.items()} != {b: set(a) for b, a in c["weights"].items()}:
        return False
    same = all(np.array_equal(m.weights[b][n], a) for b, arrays in c["weights"].items() for n, a in arrays.items())
    o, p = m.optimizer, c["optimizer"]
    return same and o["kind"] == p["kind"] and o["step"] == p["step"] and o["hyper"] == p["hyper"] and \
        o["slots"].keys() == p["slots"].keys() and \
        all(np.array_equal(o["slots"][k][s], a) for k, slots in p["slots"].items() for s, a in slots.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text-share", type=float, default=0.2, help="share of edits of a JSON text entry")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    original, c = folder / "model.h5", contents()
    save_model(original, **c)
    data = original.read_bytes()
    with h5py.File(original, "r") as f:
        texts = {key: f[key][()].decode() for key in ("graph", "history", "trainer", "dataset")}
    rng = np.random.default_rng(args.seed)
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    kinds: collections.Counter = collections.Counter()
    wrong, other_errors, start = [], [], time.perf_counter()
    target = folder / "mutant.h5"
    for i in range(args.count):
        if i and i % 1000 == 0:
            total = sum((c for c in outcomes.values()), collections.Counter())
            print(f"  {i:,} mutations, {time.perf_counter() - start:,.0f} s: " +
                  ", ".join(f"{k} {v:,}" for k, v in sorted(total.items())), flush=True)
        if rng.random() < args.text_share:
            key = str(rng.choice(list(texts)))
            op = f"text of /{key}"
            shutil.copy(original, target)
            text = mutate_text(texts[key], rng).encode()
            with h5py.File(target, "r+") as f:
                del f[key]
                f[key] = np.array(text, dtype=h5py.string_dtype("utf-8", max(1, len(text))))
            unchanged = text.decode() == texts[key]
        else:
            n = int(rng.integers(len(BYTE_OPS)))
            op = BYTE_OPS[n]
            mutated = mutate(data, rng, n)
            target.write_bytes(mutated)
            unchanged = mutated == data
        try:
            m = load_model(target)
        except ModelFileError as e:
            outcomes[op]["refused"] += 1
            kinds[kind_of(str(e))] += 1
            continue
        except Exception as e:  # noqa: BLE001 — counted: any other exception is a bug
            outcomes[op]["other exception"] += 1
            other_errors.append(f"{op}: {type(e).__name__}: {e}")
            continue
        if same_model(m, c):
            outcomes[op]["loaded, identical" + (" (bytes unchanged)" if unchanged else "")] += 1
        else:
            outcomes[op]["LOADED WRONG"] += 1
            wrong.append((i, op))
    seconds = time.perf_counter() - start
    print(f"\n{args.count:,} mutations of a {len(data):,}-byte model file in {seconds:,.0f} s "
          f"({seconds / args.count * 1000:.1f} ms each), seed {args.seed}")
    for op, counts in sorted(outcomes.items()):
        print(f"  {op:<22} " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    print("refusals by kind: " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))
    print(f"silent wrong models: {len(wrong)}; other exceptions: {len(other_errors)}; crashes of this process: 0")
    for line in other_errors[:10]:
        print("  " + line)
    print(json.dumps({"wrong": wrong[:20]}))
    shutil.rmtree(folder)
    return 1 if wrong or other_errors else 0


if __name__ == "__main__":
    sys.exit(main())
