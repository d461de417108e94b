"""Layer compression choices: levels, formats, and identical bytes run to run."""
from __future__ import annotations

import gzip
import os
import zlib

import pytest
import zstandard

from closure.errors import BadInput
from closure.image.compress import DEFAULT_LEVEL, GZIP_HEADER, compression

DATA = os.urandom(1 << 16) + b"abc" * 100_000


def run(comp, data=DATA, block=1 << 20):
    c = comp.compressor()
    out = b"".join(c.compress(data[i:i + block]) for i in range(0, len(data), block))
    return out + c.flush()


@pytest.mark.parametrize("level", range(0, 10))
def test_gzip_every_level_round_trips_with_a_fixed_header(level):
    blob = run(compression("gzip", level))
    assert blob[:10] == GZIP_HEADER
    assert gzip.decompress(blob) == DATA   # also checks CRC32 and ISIZE


def test_gzip_of_nothing_is_valid():
    assert gzip.decompress(run(compression("gzip"), b"")) == b""


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_same_input_same_bytes(kind):
    assert run(compression(kind)) == run(compression(kind))


def test_zstd_level_and_round_trip():
    blob = run(compression("zstd", 19))
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == DATA
    assert len(blob) <= len(run(compression("zstd", 1)))


def test_defaults():
    assert compression() == compression("gzip", DEFAULT_LEVEL["gzip"])
    assert compression(None).kind == "gzip"
    assert compression("zstd").level == 3
    assert run(compression("none")) == DATA


def test_fast_gzip_is_igzip_and_high_levels_are_zlib():
    # Levels 1-3 come from ISA-L; 9 must match zlib's own raw deflate exactly.
    ref = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = ref.compress(DATA) + ref.flush()
    assert run(compression("gzip", 9), block=len(DATA))[10:-8] == body
    assert run(compression("gzip", 1))[10:-8] != body


@pytest.mark.parametrize("kind,level", [("gzip", 10), ("gzip", -1), ("zstd", 23), ("none", 1), ("brotli", None)])
def test_bad_choices_are_bad_input(kind, level):
    with pytest.raises(BadInput):
        compression(kind, level)
