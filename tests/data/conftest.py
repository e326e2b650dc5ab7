"""Small dataset files written on the spot, in the formats the loaders read."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an array: 00 00 type ndim, big-endian int32 dimensions, big-endian values."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture(name="idx_bytes")
def idx_bytes_fixture():
    return idx_bytes


@pytest.fixture(name="write_idx")
def write_idx_fixture():
    return write_idx


@pytest.fixture
def digits():
    """12 tiny 5×4 'digits' whose pixels encode their index, and labels 0..2."""
    images = (np.arange(12 * 5 * 4) % 251).astype(np.uint8).reshape(12, 5, 4)
    labels = (np.arange(12) % 3).astype(np.uint8)
    return images, labels
