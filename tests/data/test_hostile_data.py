"""Data files crafted to read other files or to allocate far more than they hold: each gives a DatasetError that
names the file, before anything large is allocated and without reading outside the file."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import h5py
import numpy as np
import pytest

from convdesigner.data import DatasetError
from convdesigner.data.arrays import load_hdf5, load_npz
from convdesigner.data.folder import load_image_folder, read_picture
from convdesigner.data.idx import load_idx

SENTINEL = b"SENTINEL-data-5e1d-never-to-be-read"


def peak_kb() -> int:
    """The process's peak memory (kB), where the system reports it (0 elsewhere: the check is then skipped)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def refused(load, path, *words):
    before = peak_kb()
    with pytest.raises(DatasetError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message and SENTINEL.decode() not in message
    assert all(w in message for w in words), message
    assert peak_kb() - before < 200_000  # kB: nothing large allocated
    return message


def npy(shape, dtype="<f4", data=b"") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)


def test_npz_declaring_10_to_the_12_elements(tmp_path):
    path = tmp_path / "bomb.npz"
    npz(path, {"x": npy((10 ** 12,), data=bytes(64)), "y": npy((4,), "<i8", bytes(32))})
    refused(load_npz, path, "'x'", "declares", "holds only")


def test_npz_whose_member_declares_more_than_deflate_can_give(tmp_path):
    path = tmp_path / "liar.npz"
    npz(path, {"x": npy((4, 8, 8), "|u1", bytes(256)), "y": npy((4,), "<i8", bytes(32))})
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02") + 1)  # the first member's directory entry
    struct.pack_into("<I", data, central + 24, 2 ** 40 & 0xFFFFFFFF or 0xFFFFFFF0)  # uncompressed size
    path.write_bytes(bytes(data))
    refused(load_npz, path, "'x'")


def test_npz_label_of_a_billion_is_refused_before_making_class_names(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 10 ** 9]))
    refused(load_npz, path, "1,000,000,000", "at most 100,000 classes")


def test_idx_label_of_two_billion(tmp_path):
    images, labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    images.write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 2, 2, 2) + bytes(8))
    labels.write_bytes(b"\0\0\x0c\x01" + struct.pack(">I", 2) + struct.pack(">ii", 0, 2 * 10 ** 9))
    refused(lambda p: load_idx(images, p), labels, "at most 100,000 classes")


def test_idx_gzip_bomb_is_a_dataset_error(tmp_path, monkeypatch):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(30))
    import gzip

    def no_memory(data):
        raise MemoryError
    monkeypatch.setattr(gzip, "decompress", no_memory)
    refused(lambda p: load_idx(p, p), path, "too large")


def png(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height pixels, with next to no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def test_a_200_byte_png_declaring_60000_by_60000(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png(60000, 60000))
    assert path.stat().st_size < 200
    refused(lambda p: read_picture(p, 1, (8, 8)), path, "3,600,000,000 pixels", "too large")
    folder = tmp_path / "set" / "bombs"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(png(60000, 60000))
    refused(lambda _: load_image_folder(tmp_path / "set"), folder / "a.png", "too large")


def test_mixed_sizes_suggest_what_can_really_be_done(tmp_path):
    from PIL import Image
    for name, size in (("a", (8, 8)), ("b", (9, 8))):
        (tmp_path / "c").mkdir(exist_ok=True)
        Image.new("L", size).save(tmp_path / "c" / f"{name}.png")
    with pytest.raises(DatasetError, match="resize the pictures to one size.*--resume"):
        load_image_folder(tmp_path)


@pytest.fixture
def data_h5(tmp_path):
    """A valid HDF5 data file, and a file of another program holding the sentinel."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["names"] = np.array([SENTINEL] * 3)
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((3, 8, 8), np.uint8)
        f["y"] = np.array([0, 1, 2])
    return path, other


def test_valid_hdf5_data_still_load(data_h5):
    train, _ = load_hdf5(data_h5[0])
    assert train.images.shape == (3, 1, 8, 8) and train.class_names == ["0", "1", "2"]


def test_class_names_from_another_file_are_refused(data_h5):
    path, other = data_h5
    with h5py.File(path, "a") as f:
        f["class_names"] = h5py.ExternalLink(str(other), "/names")
    refused(load_hdf5, path, "class_names", "link")


@pytest.mark.parametrize("kind", ["soft", "dangling", "external storage", "virtual", "unwritten"])
def test_hdf5_data_entries_of_other_kinds(data_h5, tmp_path, kind):
    path, other = data_h5
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SENTINEL * 8)
    with h5py.File(path, "a") as f:
        del f["y"]
        if kind == "soft":
            f["y"] = h5py.SoftLink("/x")
        elif kind == "dangling":
            f["y"] = h5py.SoftLink("/nothing")
        elif kind == "external storage":
            f.create_dataset("y", shape=(3,), dtype="<i8", external=[(str(secret), 0, 24)])
        elif kind == "virtual":
            layout = h5py.VirtualLayout((3,), "<i8")
            layout[:] = h5py.VirtualSource(str(other), "names", shape=(3,))
            f.create_virtual_dataset("y", layout)
        else:
            f.create_dataset("y", shape=(10 ** 9,), dtype="<i8", chunks=(10 ** 6,))
    refused(load_hdf5, path, "'/y'")
