"""The fast golden writers give the bytes of the plain formulas: the numba hex kernel against the
NumPy table lookups (``formats.hex_chunks``), ``.npy`` against ``np.save``, the front-to-back
``.npz`` against ``zipfile`` (zip64 records included), and the direct-I/O stream against the page
cache — on every dtype, edge values, odd split points and buffer alignments."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
from golden_helpers import small_model
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npquant.golden import golden_tensors, stream, write_golden
from npquant.golden.formats import hex_chunks
from npquant.golden.hex_kernel import hex_range, hex_size, value_bits
from npquant.golden.npz_stream import npy_header, raw_bytes, write_npz
from npquant.golden.stream import BLOCK, Streamer, direct_io_works

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16",
          "float32", "float64", ">i4", ">f4", ">i2"]


@st.composite
def golden_arrays(draw, max_size: int = 300) -> np.ndarray:
    """An array of a golden dtype: its bit patterns drawn whole (so floats include NaNs, infs,
    -0 and subnormals), with the type's edge values planted, any shape of up to ``max_size``."""
    dt = np.dtype(draw(st.sampled_from(DTYPES)))
    unsigned = np.dtype(f"u{dt.itemsize}")
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12))
    size = int(np.prod(shape))
    if size > max_size:
        shape = (draw(st.integers(0, max_size)),)
        size = shape[0]
    bits = draw(hnp.arrays(unsigned, size, elements=st.integers(0, 2 ** (8 * dt.itemsize) - 1)))
    edges = [0, 1, 2 ** (8 * dt.itemsize) - 1, 2 ** (8 * dt.itemsize - 1),
             2 ** (8 * dt.itemsize - 1) - 1, 0x0F, 0xF0, 0xA5]
    for i in draw(st.lists(st.integers(0, max(size - 1, 0)), max_size=4 if size else 0)):
        bits[i] = draw(st.sampled_from(edges)) % 2 ** (8 * dt.itemsize)
    return bits.view(dt.newbyteorder("=")).astype(dt).reshape(shape)


def reference_hex(arr: np.ndarray) -> bytes:
    return b"".join(hex_chunks(arr))


@pytest.mark.parametrize("vector", [False, True], ids=["words", "vector"])
@given(arr=golden_arrays(), cuts=st.lists(st.integers(1, 400), max_size=8),
       shift=st.integers(0, 7))
@settings(max_examples=200)
def test_hex_kernel_equals_the_numpy_formula_on_any_split(vector, arr, cuts, shift):
    """Any byte range of the text on its own, at any out-address mod 8 (the word stores), with
    and without the 64-line register periods (``hex_vector``: generic IR, the same on any CPU)."""
    want = reference_hex(arr)
    bits = value_bits(arr)
    assert hex_size(bits.size, bits.itemsize) == len(want)
    room = np.zeros(len(want) + 8, dtype=np.uint8)
    out = room[shift:shift + len(want)]
    start = 0
    for k in [*cuts, len(want)]:
        k = min(k, len(want) - start)
        hex_range(bits, out[start:start + k], start, vector=vector)
        start += k
    assert out.tobytes() == want


@pytest.mark.parametrize("vector", [False, True], ids=["words", "vector"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "float32"])
def test_hex_kernel_grouped_path_on_a_long_array(dtype, vector):
    """The 8-line word stores (and the 64-line periods) over thousands of groups, split at 8 KiB
    buffer boundaries (lines straddle them), edges first."""
    rng = np.random.default_rng(3)
    dt = np.dtype(dtype)
    bits = rng.integers(0, 2 ** (8 * dt.itemsize), size=50_003, dtype=f"u{dt.itemsize}")
    bits[:4] = [0, 2 ** (8 * dt.itemsize) - 1, 2 ** (8 * dt.itemsize - 1), 0xA5]
    arr = bits.view(dt)
    want = reference_hex(arr)
    out = np.empty(len(want), dtype=np.uint8)
    for start in range(0, len(want), 8192):
        hex_range(value_bits(arr), out[start:start + 8192], start, vector=vector)
    assert out.tobytes() == want


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint32"])
def test_hex_periods_at_the_end_of_the_values(dtype):
    """The last period a range may take reads up to ``reach`` values past its first: every count
    of values around it, and a range starting at every line of the first period."""
    from npquant.golden.hex_vector import LINES, reach

    dt = np.dtype(dtype)
    rng = np.random.default_rng(5)
    edge = LINES + reach(dt.itemsize)
    for count in range(edge - 80, edge + 80):
        arr = rng.integers(0, 2 ** (8 * dt.itemsize), size=count,
                           dtype=f"u{dt.itemsize}").view(dt)
        want = reference_hex(arr)
        for first_line in (v for v in (0, 1, 7, 63) if v < count):
            start = first_line * (2 * dt.itemsize + 1)
            out = np.empty(len(want) - start, dtype=np.uint8)
            hex_range(value_bits(arr), out, start, vector=True)
            assert out.tobytes() == want[start:], (count, first_line)


def test_hex_range_rejects_a_range_outside_the_text():
    bits = value_bits(np.arange(3, dtype=np.int8))
    with pytest.raises(ValueError, match="outside the hex text of 9 bytes"):
        hex_range(bits, np.empty(2, np.uint8), 8)
    with pytest.raises(TypeError, match="out must be a 1-D uint8"):
        hex_range(bits, np.empty(2, np.int8), 0)


def old_npz(members: list[tuple[str, np.ndarray]]) -> bytes:
    """The .npz bytes of the previous writer: zipfile, stored members, np.lib.format.write_array."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, a in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)
    return buf.getvalue()


@given(golden_arrays(max_size=60))
@settings(max_examples=150)
def test_npy_is_header_plus_raw_bytes_as_np_save_writes_it(arr):
    saved = io.BytesIO()
    np.save(saved, arr, allow_pickle=False)
    ours = npy_header(arr) + raw_bytes(arr).tobytes()
    assert ours == saved.getvalue()
    back = np.load(io.BytesIO(ours), allow_pickle=False)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes() == arr.tobytes()


def test_npy_of_a_non_contiguous_array_is_that_of_its_c_order_copy():
    arr = np.arange(12, dtype=np.int32).reshape(3, 4).T
    saved = io.BytesIO()
    np.save(saved, np.ascontiguousarray(arr))
    assert npy_header(np.ascontiguousarray(arr)) + raw_bytes(arr).tobytes() == saved.getvalue()


@given(st.lists(golden_arrays(max_size=40), min_size=1, max_size=5),
       st.sampled_from([None, 0, 200]), st.sampled_from([None, 2]))
@settings(max_examples=60)
def test_npz_equals_zipfile_bytes_and_loads_without_pickle(arrays, zip64_limit, count_limit):
    """Byte for byte zipfile's archive; with the zip64 limits lowered (monkeypatched in both
    writers alike) the zip64 central-directory fields and end records are checked too."""
    members = [(f"{i:02d}_t.npy", a) for i, a in enumerate(arrays)]
    with pytest.MonkeyPatch.context() as mp:
        if zip64_limit is not None:
            mp.setattr(zipfile, "ZIP64_LIMIT", zip64_limit)
        if count_limit is not None:
            mp.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", count_limit)
        ours = io.BytesIO()
        write_npz(ours, members)
        assert ours.getvalue() == old_npz(members)
    with np.load(io.BytesIO(ours.getvalue()), allow_pickle=False) as z:
        assert z.files == [name[:-4] for name, _ in members]
        for name, a in members:
            got = z[name[:-4]]
            assert got.dtype == a.dtype and got.shape == a.shape
            assert got.tobytes() == a.tobytes(), name


def write_through(directory, data: bytes, *, direct: bool, buffer_size: int) -> str:
    with Streamer(directory, direct=direct, buffer_size=buffer_size, buffers=2) as s:
        return s.write_file(directory / "f", lambda f: [f.write(data[i:i + 5000])
                                                        for i in range(0, len(data), 5000)])


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * 2 * BLOCK + 5])
@pytest.mark.parametrize("direct", [False, True])
def test_stream_file_bytes_size_and_sha256(tmp_path, size, direct):
    """Every buffer boundary and block tail (padded, then cut by ftruncate under O_DIRECT)."""
    if direct and not direct_io_works(tmp_path):
        pytest.skip(f"O_DIRECT does not work in {tmp_path} (file system without direct I/O)")
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    digest = write_through(tmp_path, data, direct=direct, buffer_size=2 * BLOCK)
    assert (tmp_path / "f").read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()


def test_a_failing_fill_closes_its_file_and_returns_its_buffers(tmp_path):
    """With a pool of 2 buffers, a later file still gets buffers after a fill raised."""
    with Streamer(tmp_path, buffer_size=BLOCK, buffers=2) as s:
        def fail(f):
            f.write(bytes(3 * BLOCK + 1))
            raise RuntimeError("formatter broke")

        with pytest.raises(RuntimeError, match="formatter broke"):
            s.write_file(tmp_path / "bad", fail)
        data = bytes(range(256)) * 100
        assert s.write_file(tmp_path / "good", lambda f: f.write(data)) == \
            hashlib.sha256(data).hexdigest()
    assert (tmp_path / "good").read_bytes() == data


def test_export_matches_the_plain_formulas_through_the_page_cache_and_direct_io(tmp_path,
                                                                                 monkeypatch):
    """A whole export: every .npy is np.save's bytes, every .hex hex_chunks', every .bin the
    little-endian bytes, golden.npz zipfile's archive of the same members; the direct-I/O and
    page-cache exports are identical, manifest included."""
    im, x = small_model()

    def export(parent: str) -> tuple[dict[str, bytes], bool]:
        out = tmp_path / parent / "g"  # the same name: the same C include guard
        with stream.collect_stats() as stats:
            write_golden(im, x[:3], out, seed=1, labels=np.arange(3), command=["test"])
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}, stats.direct

    fast, direct = export("auto")
    assert direct == direct_io_works(tmp_path)
    monkeypatch.setattr(stream, "direct_io_works", lambda directory: False)
    assert export("page_cache") == (fast, False)
    tensors, _ = golden_tensors(im, x[:3], labels=np.arange(3))
    members = []
    for key, arr, _ in tensors:
        saved = io.BytesIO()
        np.save(saved, arr, allow_pickle=False)
        assert fast[f"{key}.npy"] == saved.getvalue(), key
        assert fast[f"{key}.hex"] == reference_hex(arr), key
        assert fast[f"{key}.bin"] == arr.astype(arr.dtype.newbyteorder("<")).tobytes(), key
        members.append((f"{key}.npy", arr))
    assert fast["golden.npz"] == old_npz(members)


def test_a_failing_write_is_raised_by_write_file_and_the_export_keeps_the_old_dir(tmp_path,
                                                                                   monkeypatch):
    """A disk error in an I/O thread (here ENOSPC) reaches the caller; an export hit by it
    leaves the previous golden directory whole."""
    import errno
    import os

    def full(fd, data, offset, stats):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    im, x = small_model()
    out = tmp_path / "g"
    write_golden(im, x[:2], out, seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(stream, "_pwrite_all", full)
    with Streamer(tmp_path, buffer_size=BLOCK, buffers=2) as s, \
            pytest.raises(OSError, match="No space"):
        s.write_file(tmp_path / "f", lambda f: f.write(bytes(5 * BLOCK)))
    with pytest.raises(OSError, match="No space"):
        write_golden(im, x[:2], out, seed=2, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".g.")] == []
