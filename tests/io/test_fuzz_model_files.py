"""Damaged copies of a real model file (seeded byte mutations, and edits of its JSON text) either load back exactly
what was saved or raise ModelFileError, never anything else: no silent wrong weights, no crash (HDF5 first reads a
new file in a child process). benchmarks/fuzz_model_files.py runs tens of thousands of these mutations."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from convdesigner.io import ModelFileError, load_model


def mutate(data: bytes, rng: np.random.Generator, op: int) -> bytes:
    buf = bytearray(data)
    n = len(buf)
    if op == 0:  # cut short
        return bytes(buf[:rng.integers(0, n)])
    if op == 1:  # a few flipped bits anywhere
        for _ in range(rng.integers(1, 6)):
            buf[rng.integers(n)] ^= 1 << int(rng.integers(8))
    elif op == 2:  # a run of random bytes
        start, length = int(rng.integers(n)), int(rng.integers(1, 64))
        buf[start:start + length] = rng.integers(0, 256, len(buf[start:start + length]), dtype=np.uint8).tobytes()
    elif op == 3:  # one byte of the superblock and the first object headers, where the structure lives
        buf[rng.integers(min(n, 4096))] = int(rng.integers(256))
    elif op == 4:  # a block copied over another (plausible-looking but wrong structures)
        src, dst, length = int(rng.integers(n)), int(rng.integers(n)), int(rng.integers(8, 256))
        chunk = buf[src:src + length]
        buf[dst:dst + len(chunk)] = chunk
    else:  # zeros, as a crashed disk leaves them
        start = int(rng.integers(n))
        stop = min(n, start + int(rng.integers(1, 512)))
        buf[start:stop] = bytes(stop - start)
    return bytes(buf)


def load_or_model_file_error(path, contents) -> str:
    """"refused", or "loaded" when what loaded is exactly what was saved (the checksum covers every entry)."""
    try:
        m = load_model(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return "refused"
    assert m.graph == contents["graph"] and m.dataset == contents["dataset"]
    for block, arrays in contents["weights"].items():
        for name, value in arrays.items():
            assert np.array_equal(m.weights[block][name], value)
    for key, slots in contents["optimizer"]["slots"].items():
        for slot, value in slots.items():
            assert np.array_equal(m.optimizer["slots"][key][slot], value)
    return "loaded"


@pytest.mark.parametrize("op", range(6))
def test_mutated_bytes(saved, tmp_path, op):
    path, contents = saved
    data = path.read_bytes()
    rng = np.random.default_rng(1000 + op)
    target = tmp_path / "mutant.h5"
    outcomes = []
    for _ in range(40):
        mutant = mutate(data, rng, op)
        target.write_bytes(mutant)
        outcomes.append(load_or_model_file_error(target, contents))
    assert "refused" in outcomes


def mutate_text(text: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(len(text)))
    choice = rng.integers(4)
    if choice == 0:
        return text[:i] + text[i + int(rng.integers(1, 8)):]
    if choice == 1:
        return text[:i] + str(rng.choice(list('{}[]",:0-9.e-nulltruefalse "x'))) + text[i:]
    if choice == 2:  # a number somewhere made huge, negative or fractional
        old, new = rng.choice(["16", "1", "3", "0", "8", "4"]), rng.choice(["-1", "1e9", "2.5", "null", '"3"', "[]"])
        return text.replace(str(old), str(new), 1)
    return text[:i] + text[i + 1:i + 40] + text[i:i + 1] + text[i + 40:]


@pytest.mark.parametrize("seed, key", list(enumerate(["graph", "history", "trainer", "dataset"])))
def test_mutated_json_text(saved, tmp_path, seed, key):
    path, contents = saved
    with h5py.File(path, "r") as f:
        original = f[key][()].decode()
    json.loads(original)
    rng = np.random.default_rng(2000 + seed)
    target = tmp_path / "mutant.h5"
    for _ in range(20):
        target.write_bytes(path.read_bytes())
        text = mutate_text(original, rng).encode()
        with h5py.File(target, "r+") as f:
            del f[key]
            f[key] = np.array(text, dtype=h5py.string_dtype("utf-8", max(1, len(text))))
        outcome = load_or_model_file_error(target, contents)
        assert outcome == "refused" or text.decode() == original  # an edited text fails the checksum
