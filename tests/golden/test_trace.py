"""The sliced traced run (``npquant.golden.trace``): the same integers as one run over the whole
batch, and an export streamed from it writes the same bytes as one from a single slice, whatever
the slice size, NHWC copies and a residual network included; a failure on either side stops the
other and leaves the old directory."""

from __future__ import annotations

import time

import numpy as np
import pytest
from golden_helpers import small_model
from test_golden_wiring import _model as residual_model

from npquant.golden import stream, trace, write_golden
from npquant.golden.trace import SlicedTrace, TraceStopped


def _fields(e):
    return [e.input, e.output, e.acc, e.other]


@pytest.mark.parametrize("model", ["cnn", "residual"])
@pytest.mark.parametrize("step", [1, 3, 7, 100])
def test_sliced_trace_equals_one_run_over_the_batch(model, step):
    im, x = small_model() if model == "cnn" else residual_model()
    x = np.concatenate([x, x[::-1] * 0.5, x * 2])[:7]
    logits, whole = im.run(x, return_trace=True)
    t = SlicedTrace(im, x, slice_images=step)
    assert t.done == min(step, len(x))
    t.run()
    assert t.done == len(x) == t.wait(len(x))
    assert len(t.entries) == len(whole) + 1
    for e, w in zip(t.entries, whole, strict=False):
        for got, want in zip(_fields(e), _fields(w), strict=True):
            assert (got is None) == (want is None), e.name
            if want is not None:
                assert got.dtype == want.dtype and np.array_equal(got, want), e.name
    final = t.entries[-1]
    assert np.array_equal(final.input, logits)
    assert np.array_equal(final.output, im.dequantize_logits(logits))
    for i, e in enumerate(t.entries[1:], 1):  # an op's input is the array feeding it
        src = (i - 1,) if im.wiring is None else im.wiring[i]
        assert e.input is t.entries[src[0]].output, e.name


def _export(d, im, x, **kw) -> dict[str, bytes]:
    write_golden(im, x, d, seed=1, labels=np.arange(len(x)), command=["t"], **kw)
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("model", ["cnn", "residual"])
def test_a_streamed_export_is_the_bytes_of_a_single_slice_one(tmp_path, monkeypatch, model):
    """Slices of 1 and 2 images (the writers wait for rows, and page-size buffers make them
    flush mid-tensor) against one slice of the whole batch: the same files, manifest included."""
    im, x = small_model() if model == "cnn" else residual_model()
    x = np.concatenate([x, x[::-1] * 0.5])[:5]
    out = {}
    for step in (1, 2, 1000):
        monkeypatch.setattr(trace, "SLICE", step)
        monkeypatch.setattr(stream, "BUFFER_SIZE", stream.BLOCK if step == 1 else 8 << 20)
        out[step] = _export(tmp_path / str(step) / "g", im, x, nhwc=True)
    assert len(out[1000]) > 40
    for step in (1, 2):
        assert out[step].keys() == out[1000].keys()
        assert [f for f in out[1000] if out[step][f] != out[1000][f]] == [], step


def test_a_failing_slice_stops_the_writers_and_keeps_the_old_dir(tmp_path, monkeypatch):
    im, x = small_model()
    d = tmp_path / "g"
    _export(d, im, x[:4])
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    monkeypatch.setattr(trace, "SLICE", 1)
    real, calls = SlicedTrace._run_slice, {"n": 0}

    def failing(self, a, b):
        calls["n"] += 1
        if calls["n"] == 3:
            raise FloatingPointError("planted in slice 3")
        return real(self, a, b)

    monkeypatch.setattr(SlicedTrace, "_run_slice", failing)
    with pytest.raises(FloatingPointError, match="planted"):
        write_golden(im, x[:6], d, overwrite=True)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".g.")] == []


def test_a_failing_writer_stops_the_run(tmp_path, monkeypatch):
    """A writer's error (not the TraceStopped the waiting writers get) reaches the caller, and
    the run stops before its last slice."""
    im, x = small_model()
    monkeypatch.setattr(trace, "SLICE", 1)
    real_slice, real_write, seen = SlicedTrace._run_slice, stream.Streamer.write_file, []

    def slow_slice(self, a, b):
        seen.append(a)
        time.sleep(0.05)  # the failing writer fails long before the 16th slice
        return real_slice(self, a, b)

    def write_file(self, path, fill):
        if path.name == "golden.npz":  # started first, fails at once
            raise OSError(28, "planted: no space left")
        return real_write(self, path, fill)

    monkeypatch.setattr(SlicedTrace, "_run_slice", slow_slice)
    monkeypatch.setattr(stream.Streamer, "write_file", write_file)
    with pytest.raises(OSError, match="planted"):
        write_golden(im, x[:16], tmp_path / "g")
    assert max(seen) < 15
    assert not (tmp_path / "g").exists()


def test_wait_raises_trace_stopped_after_cancel_and_bad_slice_size():
    im, x = small_model()
    t = SlicedTrace(im, x[:4], slice_images=2)
    assert t.wait(1) == 2
    t.cancel()
    with pytest.raises(TraceStopped):
        t.wait(4)
    with pytest.raises(TraceStopped):
        t.run()
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="slice_images"):
            SlicedTrace(im, x[:4], slice_images=bad)


def test_ops_that_move_images_make_one_slice(monkeypatch):
    from npquant.intops import ConcatOp, PadOp, ReshapeOp, TransposeOp

    moves = [PadOp("p", pads=((1, 0), (0, 0))), ConcatOp("c", axis=0), ConcatOp("c", axis=-4),
             TransposeOp("t", perm=(1, 0, 2, 3))]
    keeps = [PadOp("p", pads=((0, 0), (0, 0), (1, 1), (1, 1))), ConcatOp("c", axis=1),
             TransposeOp("t", perm=(0, 2, 3, 1)), ReshapeOp("r", shape=(4,))]
    assert [trace._moves_images(op) for op in moves] == [True] * 4
    assert [trace._moves_images(op) for op in keeps] == [False] * 4
    im, x = small_model()
    monkeypatch.setattr(trace, "_moves_images", lambda op: op.op == "MAX_POOL_2D")
    t = SlicedTrace(im, x[:5], slice_images=2)
    assert t.step == 5 and t.done == 5  # the whole batch in the constructor's one slice
    assert np.array_equal(t.entries[-1].input, im.run(x[:5]))


def test_populate_faults_pages_in_without_changing_them():
    """``populate`` (MADV_POPULATE_WRITE, Linux 5.14+) on an unaligned range of a private map:
    the bytes stay zero and writable; on a kernel that has it, the call succeeds."""
    import mmap
    import platform
    import sys

    from npquant.golden.trace import populate

    buf = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    a = np.frombuffer(buf, np.uint8)
    done = populate(a.ctypes.data + 100, 300_000)
    release = tuple(int(v) for v in platform.release().split(".")[:2] if v.isdigit())
    if sys.platform.startswith("linux") and release >= (5, 14):
        assert done
    assert not a.any()
    a[100:300_100] = 7
    assert int(a.sum()) == 7 * 300_000
