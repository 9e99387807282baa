"""A safe wire format for values crossing the sandbox boundary: JSON structure plus raw array buffers.

Never pickle: unpickling what an untrusted child wrote would run its code in the grading process. Only
numbers, strings, booleans, None, lists, tuples, dicts and numeric numpy arrays travel; anything else is
refused on the sending side.

A frame is ``u64 length`` + payload; a payload is ``u32 header length`` + JSON header + buffers, each
``u64 length`` + bytes, referenced from the header by index.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

MAX_FRAME = 8 << 30
_NUMERIC_KINDS = "biufc"


class WireError(ValueError):
    """A value that cannot travel, or a frame that does not parse."""


def _pack(value: object, buffers: list[bytes | memoryview], depth: int = 0) -> object:
    if depth > 64:
        raise WireError("value nested more than 64 levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return {"$int": str(int(value))} if abs(int(value)) >= 2**53 else int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else {"$float": repr(f)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (complex, np.complexfloating)):
        return {"$complex": [_pack(value.real, buffers), _pack(value.imag, buffers)]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise WireError(f"array of dtype {value.dtype} cannot be returned (numeric arrays only)")
        arr = value if value.flags.c_contiguous else value.copy(order="C")  # a 0-d array stays 0-d
        buffers.append(arr.data.cast("B") if arr.size and arr.dtype.kind != "c" else arr.tobytes())
        return {"$nd": len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(value, bytes):
        buffers.append(value)
        return {"$bytes": len(buffers) - 1}
    if isinstance(value, list):
        return [_pack(v, buffers, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_pack(v, buffers, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"$dict": [[_pack(k, buffers, depth + 1), _pack(v, buffers, depth + 1)] for k, v in value.items()]}
    raise WireError(f"a value of type {type(value).__name__} cannot be returned")


def _unpack(node: object, buffers: list[bytes]) -> object:
    if isinstance(node, list):
        return [_unpack(v, buffers) for v in node]
    if not isinstance(node, dict):
        return node
    if "$nd" in node:
        dtype = np.dtype(node["dtype"])
        if dtype.kind not in _NUMERIC_KINDS:
            raise WireError(f"refusing array dtype {dtype}")
        shape = tuple(int(s) for s in node["shape"])
        raw = buffers[int(node["$nd"])]
        if len(raw) != dtype.itemsize * math.prod(shape):
            raise WireError("array buffer size does not match its shape")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if "$bytes" in node:
        return buffers[int(node["$bytes"])]
    if "$tuple" in node:
        return tuple(_unpack(v, buffers) for v in node["$tuple"])
    if "$dict" in node:
        out = {}
        for k, v in node["$dict"]:
            key = _unpack(k, buffers)
            if isinstance(key, (list, dict)):
                raise WireError("unhashable dict key")
            out[key] = _unpack(v, buffers)
        return out
    if "$int" in node:
        return int(node["$int"])
    if "$float" in node:
        return float(node["$float"])
    if "$complex" in node:
        re, im = node["$complex"]
        return complex(float(re), float(im))
    raise WireError("unknown node in frame header")


def _parts(value: object) -> list[bytes | memoryview]:
    """The payload as pieces: array buffers are views of the arrays, not copies (a result the size of the
    output must not double the child's peak memory while it is written)."""
    buffers: list[bytes | memoryview] = []
    header = json.dumps(_pack(value, buffers), allow_nan=False).encode()
    parts: list[bytes | memoryview] = [struct.pack("<I", len(header)), header]
    for buf in buffers:
        parts += [struct.pack("<Q", len(buf)), buf]
    return parts


def encode(value: object) -> bytes:
    return b"".join(_parts(value))


def decode(payload: bytes) -> object:
    try:
        (hlen,) = struct.unpack_from("<I", payload, 0)
        header = json.loads(payload[4 : 4 + hlen])
        pos, buffers = 4 + hlen, []
        view = memoryview(payload)
        while pos < len(payload):
            (blen,) = struct.unpack_from("<Q", payload, pos)
            pos += 8
            if pos + blen > len(payload):
                raise WireError("truncated buffer")
            buffers.append(bytes(view[pos : pos + blen]))
            pos += blen
        return _unpack(header, buffers)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed frame: {exc}") from None


def write_frame(fd: int, value: object) -> None:
    """Encode and write one frame to a file descriptor (blocking)."""
    parts = _parts(value)
    for piece in [struct.pack("<Q", sum(len(p) for p in parts)), *parts]:
        data = memoryview(piece)
        while data:
            n = os.write(fd, data)
            data = data[n:]


def read_frame(fd: int, limit: int = MAX_FRAME) -> object:
    """Read one frame from a blocking file descriptor; EOFError when the other side closed."""

    def read_exact(n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    (length,) = struct.unpack("<Q", read_exact(8))
    if length > limit:
        raise WireError("frame too large")
    return decode(read_exact(length))


class FrameTooLarge(WireError):
    """A frame whose declared length is over the reader's bound (refused before it is read)."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"a frame of {length} bytes, over the bound of {limit} bytes")
        self.length, self.limit = length, limit


class FrameReader:
    """Incremental frame parser for a non-blocking pipe: feed bytes, take complete frames.

    ``limit`` bounds each frame and ``total`` all of them together; both are checked against the declared
    length before any of the frame is kept, so a child cannot make the reader allocate what it announces."""

    def __init__(self, limit: int = MAX_FRAME, total: int | None = None) -> None:
        self._buf = bytearray()
        self._limit = limit
        self._left = total if total is not None else 4 * limit

    def feed(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left < 0:
            raise FrameTooLarge(len(self._buf) + len(data), self._limit)
        self._buf += data

    def frames(self) -> list[object]:
        out = []
        while len(self._buf) >= 8:
            (length,) = struct.unpack_from("<Q", self._buf, 0)
            if length > self._limit:
                raise FrameTooLarge(length, self._limit)
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            out.append(decode(payload))
        return out
