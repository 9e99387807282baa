"""The wire format (sandboxed/llmc_wire.py), in process: what travels and comes back equal, what is refused
on the sending side, and frames a hostile child could forge, refused on the reading side."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from pytest_llmchallenges.child import llmc_wire as wire


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -7, 2**53, -(2**70), 1.5, float("inf"), float("-inf"), float("nan"), "text ü", b"\x00raw",
        1 + 2j, [1, [2, "x"]], (1, (2.0, None)), {"a": 1, 2: [3], (1, 2): "tuple key", None: 0.5},
        np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros((0, 3)), np.array([1 + 1j, 2j], np.complex128),
        np.array([True, False]), np.arange(6, dtype=np.int8)[::2], np.asfortranarray(np.ones((2, 3))),
        {"grads": (np.ones(2), np.zeros(2))},
    ],
)  # fmt: skip
def test_values_travel_unchanged(value: object) -> None:
    assert _same(wire.decode(wire.encode(value)), value)


def test_a_zero_dimensional_array_keeps_its_shape() -> None:
    assert wire.decode(wire.encode(np.array(3.0))).shape == ()


def test_numpy_scalars_arrive_as_python_numbers() -> None:
    got = wire.decode(wire.encode([np.int64(3), np.float32(0.5), np.bool_(True)]))
    assert got == [3, 0.5, True] and [type(x) for x in got] == [int, float, bool]


def test_a_decoded_array_is_writable_and_owns_its_memory() -> None:
    got = wire.decode(wire.encode(np.ones(4)))
    assert isinstance(got, np.ndarray) and got.flags.writeable and got.flags.owndata


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "a value of type object cannot be returned"),
        ({1, 2}, "a value of type set cannot be returned"),
        (np.array(["a"]), "array of dtype <U1 cannot be returned"),
        (np.array([object()]), "array of dtype object cannot be returned"),
        (len, "a value of type builtin_function_or_method cannot be returned"),
    ],
)
def test_other_values_are_refused_when_sent(value: object, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.encode(value)


def test_deep_nesting_is_refused() -> None:
    value: list = []
    for _ in range(70):
        value = [value]
    with pytest.raises(wire.WireError, match="nested more than 64 levels"):
        wire.encode(value)


def _payload(header: object, *buffers: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + b"".join(struct.pack("<Q", len(b)) + b for b in buffers)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_payload({"$nd": 0, "dtype": "|O", "shape": [1]}, b"\0" * 8), "refusing array dtype object"),
        (_payload({"$nd": 0, "dtype": "<f8", "shape": [2]}, b"\0" * 8), "does not match its shape"),
        (_payload({"$nd": 3, "dtype": "<f8", "shape": [1]}, b"\0" * 8), "malformed frame"),
        (_payload({"$dict": [[[1], 2]]}), "unhashable dict key"),
        (_payload({"$pickle": "..."}), "unknown node"),
        (_payload([1]) + struct.pack("<Q", 100) + b"short", "truncated buffer"),
        (b"\xff\xff", "malformed frame"),
        (struct.pack("<I", 3) + b"{{{", "malformed frame"),
    ],
)
def test_forged_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode(payload)


def test_frames_cross_a_pipe() -> None:
    r, w = os.pipe()
    try:
        wire.write_frame(w, {"event": "result", "value": np.arange(3)})
        got = wire.read_frame(r)
        assert isinstance(got, dict) and got["event"] == "result" and list(got["value"]) == [0, 1, 2]
        os.close(w)
        w = -1
        with pytest.raises(EOFError):
            wire.read_frame(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def _read_written(data: bytes, limit: int = wire.MAX_FRAME) -> object:
    """read_frame of ``data`` written to a pipe whose writer is then closed."""
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        return wire.read_frame(r, limit)
    finally:
        os.close(r)


def test_read_frame_refuses_a_declared_length_over_its_limit() -> None:
    with pytest.raises(wire.WireError, match="frame too large"):
        _read_written(struct.pack("<Q", 1 << 40), limit=1 << 20)


def _frame(value: object) -> bytes:
    body = wire.encode(value)
    return struct.pack("<Q", len(body)) + body


def test_frame_reader_takes_frames_fed_in_pieces() -> None:
    data = _frame("one") + _frame([2]) + _frame({"three": 3})
    reader = wire.FrameReader()
    got: list[object] = []
    for i in range(0, len(data), 5):
        reader.feed(data[i : i + 5])
        got += reader.frames()
    assert got == ["one", [2], {"three": 3}]


def test_frame_reader_refuses_an_announced_frame_over_its_bound_before_reading_it() -> None:
    reader = wire.FrameReader(limit=1000)
    reader.feed(struct.pack("<Q", 10**9))
    with pytest.raises(wire.FrameTooLarge) as info:
        reader.frames()
    assert (info.value.length, info.value.limit) == (10**9, 1000)


def test_frame_reader_bounds_everything_fed() -> None:
    reader = wire.FrameReader(limit=100, total=150)
    reader.feed(_frame("x" * 50))
    with pytest.raises(wire.FrameTooLarge):
        reader.feed(b"\0" * 100)


def test_a_frame_sends_array_buffers_as_views_not_copies() -> None:
    """A result the size of the output must not double the child's peak while it is written."""
    big = np.arange(1 << 16, dtype=np.float64)
    views = [p for p in wire._parts({"O": big}) if isinstance(p, memoryview)]
    assert len(views) == 1 and np.shares_memory(np.frombuffer(views[0], dtype=np.float64), big)


def test_a_frame_cut_off_mid_body_is_end_of_stream() -> None:
    body = wire.encode([1, 2, 3])
    with pytest.raises(EOFError):
        _read_written(struct.pack("<Q", len(body)) + body[:-2])
