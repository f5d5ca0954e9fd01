"""Prediction ids: UUID version 7, unguessable and ordered by creation time (good for B-tree inserts)."""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_prediction_id"]


def new_prediction_id() -> uuid.UUID:
    """A fresh RFC 9562 UUIDv7: 48 bits of Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)
