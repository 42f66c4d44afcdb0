"""The messages between the host and an emulated CPU's child (tools/emulated_cpu.py): every
array comes back with its dtype, shape and values, and a message that does not hold what its
header says is an error, not a wrong array."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from emulated_cpu import _pack, _recv, _send, _unpack  # noqa: E402


def test_arrays_come_back_as_they_went():
    sent = {"kind": np.array("tflite"), "ready": np.bool_(True), "n": np.int64(3),
            "model": np.frombuffer(b"\x00\x01\xff", np.uint8),
            "names": np.array(["x", "scale"]), "empty": np.zeros((0, 4), np.int32),
            "x": np.arange(-60, 60, dtype=np.int8).reshape(2, 3, 4, 5),
            "transposed": np.arange(12, dtype=np.float32).reshape(3, 4).T,
            "f64": np.array([np.pi, -0.0, np.inf])}
    got = _unpack(_pack(sent))
    assert list(got) == list(sent)
    for k, v in sent.items():
        v = np.asarray(v)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert np.array_equal(got[k], v), k
        assert got[k].flags.writeable, k
    assert str(got["kind"]) == "tflite" and bool(got["ready"]) is True


def test_stream_framing_and_end():
    stream = io.BytesIO()
    _send(stream, {"a": np.arange(5)})
    _send(stream, {"b": np.array("x")})
    stream.seek(0)
    assert np.array_equal(_recv(stream)["a"], np.arange(5))
    assert str(_recv(stream)["b"]) == "x"
    assert _recv(stream) is None


def test_a_cut_message_is_an_error():
    body = _pack({"a": np.arange(100, dtype=np.int32)})
    stream = io.BytesIO(struct.pack("<Q", len(body)) + body[:-1])
    with pytest.raises(EOFError, match="cut off"):
        _recv(stream)
    with pytest.raises(ValueError, match="does not fit"):
        _unpack(body[:-4])
    with pytest.raises(ValueError, match="header"):
        _unpack(body[:10])


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="object"):
        _pack({"o": np.array([1, "a"], dtype=object)})
