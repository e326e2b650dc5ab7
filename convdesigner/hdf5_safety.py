"""Opening HDF5 files that may be hostile, for the model files (io/) and the data files (data/) alike.

A file may only read itself: every entry must be a hard-linked group or dataset with storage of its own inside the
file (no soft or external links, virtual datasets or external raw storage), and every byte a dataset declares must
really be stored there, so nothing is read from elsewhere, no fill value stands in for a lost chunk, and no array
is allocated larger than the file can hold. Because the HDF5 library itself can crash on damaged metadata,
:func:`in_child` lets a caller walk a file first in a short-lived child process.
"""
from __future__ import annotations

import faulthandler
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import h5py
import numpy as np
from h5py._objects import phil

FLETCHER32, DEFLATE, SHUFFLE = h5py.h5z.FILTER_FLETCHER32, h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE
_FILTER_NAMES = {FLETCHER32: "Fletcher-32", DEFLATE: "gzip", SHUFFLE: "shuffle"}
DEFLATE_RATIO = 1032  # deflate cannot expand data more than this, so a compressed chunk bounds its own size
MAX_ENTRIES = 1_000_000
MAX_CHUNKS = 4_000_000
MAX_ATTRIBUTE_BYTES = 1 << 20


class HDF5Refused(ValueError):
    """The file holds something a file may not hold, or declares more than it stores; the message says what."""


def hard_entries(root: h5py.Group) -> dict[str, h5py.Group | h5py.Dataset]:
    """Every group and dataset below ``root`` by path, each checked to be reached by a hard link before it is
    opened (a soft or external link is refused unfollowed); each object is reached once, so links cannot loop."""
    found: dict[str, h5py.Group | h5py.Dataset] = {}
    seen = {_identity(root)}
    pending = [root]
    while pending:
        group = pending.pop()
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                raise HDF5Refused(f"'{path}' is a soft link to '{link.path}'; only entries of their own are allowed")
            if isinstance(link, h5py.ExternalLink):
                raise HDF5Refused(f"'{path}' is an external link into '{link.filename}'; a file may only read itself")
            if not isinstance(link, h5py.HardLink):
                raise HDF5Refused(f"'{path}' is a link of an unknown kind")
            obj = group[name]
            if not isinstance(obj, (h5py.Group, h5py.Dataset)):
                raise HDF5Refused(f"'{path}' is a {type(obj).__name__}, not a group or dataset")
            identity = _identity(obj)
            if identity in seen:
                raise HDF5Refused(f"'{path}' links to an entry that is already linked elsewhere in the file")
            seen.add(identity)
            found[path] = obj
            if len(found) > MAX_ENTRIES:
                raise HDF5Refused(f"it holds more than {MAX_ENTRIES:,} entries")
            if isinstance(obj, h5py.Group):
                pending.append(obj)
    return found


def _identity(obj: h5py.HLObject) -> tuple[int, int]:
    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def stored_nbytes(ds: h5py.Dataset) -> int:
    """The bytes the dataset's shape declares, in exact integers (no overflow on a forged shape)."""
    return math.prod(int(d) for d in ds.shape) * ds.dtype.itemsize


def check_storage(ds: h5py.Dataset, filters: frozenset[int], ranges: list[tuple[int, int, str]]) -> None:
    """Refuse ``ds`` unless all its bytes lie inside its own file: no virtual or external storage, only the given
    filters, every chunk present, inside the file and not shared. Its byte ranges are appended to ``ranges`` so
    that :func:`check_no_overlap` can look across datasets."""
    where = ds.name
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise HDF5Refused(f"'{where}' is a virtual dataset (its data would come from other files)")
    if plist.get_external_count():
        name = plist.get_external(0)[0].decode("utf-8", "replace")
        raise HDF5Refused(f"'{where}' keeps its data in an external file ('{name}'); a file may only read itself")
    used = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    refused = [f for f in used if f not in filters]
    if refused:
        names = ", ".join(_FILTER_NAMES.get(f, f"filter {f}") for f in refused)
        raise HDF5Refused(f"'{where}' is stored with {names}, which is not allowed here; save it without")
    nbytes = stored_nbytes(ds)
    size = ds.file.id.get_filesize()
    if layout == h5py.h5d.COMPACT:
        if nbytes > 65536:
            raise HDF5Refused(f"'{where}' declares {nbytes:,} bytes stored in its header, more than HDF5 allows")
    elif layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if nbytes and (offset is None or ds.id.get_storage_size() != nbytes or offset + nbytes > size):
            raise HDF5Refused(f"'{where}' declares {_size(nbytes)} that the file does not hold (it was never "
                              f"written, or the file is cut short)")
        if nbytes:
            ranges.append((offset, nbytes, where))
    elif layout == h5py.h5d.CHUNKED:
        _check_chunks(ds, used, size, ranges)
    else:
        raise HDF5Refused(f"'{where}' has an unknown storage layout")


def _check_chunks(ds: h5py.Dataset, used: list[int], size: int, ranges: list[tuple[int, int, str]]) -> None:
    where, shape, chunks = ds.name, tuple(int(d) for d in ds.shape), tuple(int(c) for c in ds.chunks)
    grid = [math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)]
    expected = math.prod(grid)
    if expected > MAX_CHUNKS:
        raise HDF5Refused(f"'{where}' is split into {expected:,} chunks, more than {MAX_CHUNKS:,}")
    chunk_bytes = math.prod(chunks) * ds.dtype.itemsize
    count = ds.id.get_num_chunks()
    if count != expected:
        raise HDF5Refused(f"'{where}' declares {_size(stored_nbytes(ds))} in {expected:,} chunks but the file holds "
                          f"{count:,} of them (never written, or its chunk index is damaged)")
    compressed = DEFLATE in used
    fixed = chunk_bytes + (4 if FLETCHER32 in used else 0)
    positions = set()
    for i in range(count):
        info = ds.id.get_chunk_info(i)
        position = tuple(int(o) for o in info.chunk_offset)
        start, length = int(info.byte_offset), int(info.size)
        fits = all(o % c == 0 and o < s for o, c, s in zip(position, chunks, shape, strict=True))
        plausible = 0 < length and chunk_bytes <= length * DEFLATE_RATIO if compressed else length == fixed
        if not fits or position in positions or info.filter_mask or not plausible or start + length > size:
            raise HDF5Refused(f"'{where}' has a damaged chunk index (chunk {i} at {position})")
        positions.add(position)
        ranges.append((start, length, where))


def check_no_overlap(ranges: list[tuple[int, int, str]]) -> None:
    """No two stored pieces share bytes: a forged index cannot make one array read another's data."""
    ranges.sort()
    for (start, length, first), (next_start, _, second) in zip(ranges, ranges[1:], strict=False):
        if start + length > next_start:
            which = f"'{first}'" if first == second else f"'{first}' and '{second}'"
            raise HDF5Refused(f"{which} claim the same bytes of the file (a damaged or forged index)")


def attribute(obj: h5py.HLObject, name: str, kind: str) -> str | int | None:
    """A scalar attribute as ``kind`` ("text": fixed-length UTF-8, "int"), its type checked before its value is read;
    None when missing or of another type (variable-length strings live in the global heap and are never read)."""
    if name not in obj.attrs:
        return None
    aid = h5py.h5a.open(obj.id, name.encode())
    dtype, shape = aid.dtype, aid.shape
    if shape != () or dtype.itemsize > MAX_ATTRIBUTE_BYTES:
        return None
    if kind == "int":
        return int(obj.attrs[name]) if dtype.kind in "iu" else None
    info = h5py.check_string_dtype(dtype)
    if info is None or info.length is None:
        return None
    value = obj.attrs[name]
    try:
        return value.decode("utf-8") if isinstance(value, np.bytes_) else None
    except UnicodeDecodeError:
        return None


def in_child(check: Callable[[str], object], path: str, timeout: float = 60.0) -> str | None:
    """Run ``check(path)`` in a short-lived child process; return why it failed if the child crashed or hung
    (a signal, a timeout), else None. Errors ``check`` raises are the caller's to meet again in-process."""
    if sys.platform == "linux":
        with phil:  # h5py's lock: no other thread is inside h5py when the child is made, so the child never waits on it
            pid = os.fork()
        if pid == 0:  # the child: only h5py and Python, then out without running any of the parent's exit handlers
            faulthandler.disable()  # a crash here is expected, and reported by the parent
            try:
                check(path)
            finally:
                os._exit(0)
        return _wait(pid, timeout)
    code = f"import sys, {check.__module__} as m; m.{check.__qualname__}(sys.argv[1])"
    try:
        result = subprocess.run([sys.executable, "-c", code, path], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"reading it did not finish within {timeout:g} s"
    return f"reading it made the HDF5 library crash (exit code {result.returncode})" if result.returncode else None


def _wait(pid: int, timeout: float) -> str | None:
    deadline, pause = time.monotonic() + timeout, 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return f"reading it made the HDF5 library crash ({signal.Signals(os.WTERMSIG(status)).name})"
            return None
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"reading it did not finish within {timeout:g} s"
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _size(nbytes: int) -> str:
    return f"{nbytes:,} bytes" if nbytes < 1 << 20 else f"{nbytes / (1 << 20):,.1f} MiB"
