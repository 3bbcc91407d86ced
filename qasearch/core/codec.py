"""The tensor codec: how a numpy array is stored in a Redis value.

Layout (all little-endian)::

    b"QT1"  | u8 len(dtype) | dtype str (numpy, e.g. "<i4") | u8 ndim | u32 * ndim shape | data

Only fixed-size numeric dtypes are accepted; data is the array's raw C-order bytes.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"QT1"


def encode(array: np.ndarray) -> bytes:
    """Serialise ``array`` (converted to little-endian, C order)."""
    arr = np.ascontiguousarray(array).reshape(np.shape(array))
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"unsupported dtype {arr.dtype}")
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    dtype = arr.dtype.str.encode("ascii")
    header = MAGIC + struct.pack("<B", len(dtype)) + dtype
    header += struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def decode(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode`; raises ``ValueError`` on anything else."""
    if not blob.startswith(MAGIC):
        raise ValueError("not an encoded tensor (bad magic)")
    pos = len(MAGIC)
    try:
        (dlen,) = struct.unpack_from("<B", blob, pos)
        pos += 1
        dtype = np.dtype(blob[pos : pos + dlen].decode("ascii"))
        pos += dlen
        (ndim,) = struct.unpack_from("<B", blob, pos)
        pos += 1
        shape = struct.unpack_from(f"<{ndim}I", blob, pos)
        pos += 4 * ndim
    except (struct.error, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt tensor header: {exc}") from None
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(blob) - pos != expected:
        raise ValueError(f"tensor payload is {len(blob) - pos} bytes, expected {expected}")
    return np.frombuffer(blob, dtype=dtype, offset=pos).reshape(shape)
