"""A deterministic byte-level mutator for fuzzing file readers.

``mutate(data, seed)`` applies one to four mutations chosen by a :class:`random.Random` seeded
with ``seed``, so an input is reproduced from (seed corpus, seed) alone. Mutations: bit flips,
interesting byte and integer values (0, 1, -1, 0x7f.., 0x80.., powers of two), deletion,
duplication or overwrite of a chunk, truncation, and overwrite of an integer field near the
start or the end of the file (where HDF5 superblocks, object headers and zip directories live).
"""

from __future__ import annotations

import random
from collections.abc import Callable

INTERESTING_8 = (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF, 0x10, 0x20, 0x40)
"""Byte values that often hit boundaries (signed/unsigned limits, small counts)."""

INTERESTING_INTS = (0, 1, 2, 16, 255, 256, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
                    2**40, 2**63 - 1, 2**64 - 1)
"""Integer values written into 2/4/8-byte fields (little-endian, truncated to the width)."""

HEADER_SPAN = 4096
"""Bytes at each end of a file treated as the structural 'header' region."""


def _flip_bits(rng: random.Random, buf: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(buf))
        buf[pos] ^= 1 << rng.randrange(8)


def _interesting_byte(rng: random.Random, buf: bytearray) -> None:
    buf[rng.randrange(len(buf))] = rng.choice(INTERESTING_8)


def _random_bytes(rng: random.Random, buf: bytearray) -> None:
    pos = rng.randrange(len(buf))
    for i in range(pos, min(len(buf), pos + rng.randint(1, 16))):
        buf[i] = rng.randrange(256)


def _int_field(rng: random.Random, buf: bytearray, pos: int) -> None:
    width = rng.choice((2, 4, 8))
    value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
    raw = value.to_bytes(width, "little")
    buf[pos:pos + width] = raw[:max(0, len(buf) - pos)]


def _interesting_int(rng: random.Random, buf: bytearray) -> None:
    _int_field(rng, buf, rng.randrange(len(buf)))


def _header_field(rng: random.Random, buf: bytearray) -> None:
    span = min(HEADER_SPAN, len(buf))
    pos = rng.randrange(span) if rng.random() < 0.7 else len(buf) - 1 - rng.randrange(span)
    if rng.random() < 0.5:
        _int_field(rng, buf, pos)
    else:
        buf[pos] = rng.choice(INTERESTING_8) if rng.random() < 0.5 else rng.randrange(256)


def _chunk_bounds(rng: random.Random, n: int) -> tuple[int, int]:
    size = min(n, rng.choice((1, 2, 4, 8, 16, 64, 256, 1024)))
    start = rng.randrange(n - size + 1)
    return start, start + size


def _delete_chunk(rng: random.Random, buf: bytearray) -> None:
    lo, hi = _chunk_bounds(rng, len(buf))
    del buf[lo:hi]


def _duplicate_chunk(rng: random.Random, buf: bytearray) -> None:
    lo, hi = _chunk_bounds(rng, len(buf))
    at = rng.randrange(len(buf) + 1)
    buf[at:at] = buf[lo:hi]


def _overwrite_chunk(rng: random.Random, buf: bytearray) -> None:
    lo, hi = _chunk_bounds(rng, len(buf))
    at = rng.randrange(len(buf) - (hi - lo) + 1)
    buf[at:at + hi - lo] = bytes(buf[lo:hi])


def _truncate(rng: random.Random, buf: bytearray) -> None:
    del buf[rng.randrange(len(buf)):]


MUTATIONS: tuple[tuple[Callable[[random.Random, bytearray], None], float], ...] = (
    (_flip_bits, 3.0), (_interesting_byte, 2.0), (_random_bytes, 1.0), (_interesting_int, 2.0),
    (_header_field, 4.0), (_delete_chunk, 1.0), (_duplicate_chunk, 1.0), (_overwrite_chunk, 1.0),
    (_truncate, 0.5),
)
"""Mutation operators and their relative weights."""


def mutate(data: bytes, seed: int, max_mutations: int = 4) -> bytes:
    """A mutated copy of ``data``, a pure function of ``(data, seed)``.

    Args:
        data: the valid input.
        seed: selects the mutations (any int).
        max_mutations: at most this many stacked mutations (at least one).
    """
    rng = random.Random(seed)
    buf = bytearray(data)
    ops = [op for op, _ in MUTATIONS]
    weights = [w for _, w in MUTATIONS]
    for op in rng.choices(ops, weights, k=rng.randint(1, max_mutations)):
        if not buf:
            break
        op(rng, buf)
    return bytes(buf)
