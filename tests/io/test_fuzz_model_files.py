"""Damaged copies of a real model file (seeded byte mutations, and edits of its JSON text) either load into a
consistent model or raise ModelFileError, never anything else."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from convdesigner.io import ModelFileError, expected_arrays, load_model


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


def load_or_model_file_error(path) -> None:
    try:
        m = load_model(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return
    if m.weights is not None:  # whatever loads is consistent with its own graph
        for block, specs in expected_arrays(m.graph).items():
            for name, spec in specs.items():
                assert m.weights[block][name].shape == spec.shape and m.weights[block][name].dtype == np.float32


@pytest.mark.parametrize("op", range(6))
def test_mutated_bytes(saved, tmp_path, op):
    path, _ = saved
    data = path.read_bytes()
    rng = np.random.default_rng(1000 + op)
    target = tmp_path / "mutant.h5"
    for _ in range(60):
        target.write_bytes(mutate(data, rng, op))
        load_or_model_file_error(target)


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
    path, _ = saved
    with h5py.File(path, "r") as f:
        original = f[key][()].decode()
    json.loads(original)
    rng = np.random.default_rng(2000 + seed)
    target = tmp_path / "mutant.h5"
    for _ in range(40):
        target.write_bytes(path.read_bytes())
        text = mutate_text(original, rng).encode()
        with h5py.File(target, "r+") as f:
            del f[key]
            f[key] = np.array(text, dtype=h5py.string_dtype("utf-8", max(1, len(text))))
        load_or_model_file_error(target)
