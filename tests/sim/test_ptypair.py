"""PtyPair: two raw ptys joined by a relay, with fault hooks, opened as a serial user would."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.ptypair import PtyPair

# Bytes a cooked tty would eat or rewrite: NUL, ^C, ^D, ^Q, ^S, CR, LF, ^Z, DEL, 0xFF.
CONTROL = bytes([0x00, 0x03, 0x04, 0x11, 0x13, 0x0D, 0x0A, 0x1A, 0x7F, 0xFF])


def open_end(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def read_exactly(fd: int, size: int, timeout_s: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"got {len(data)} of {size} bytes: {data!r}")
        chunk = os.read(fd, size - len(data))
        if not chunk:
            pytest.fail("end closed")
        data += chunk
    return data


def assert_quiet(fd: int) -> None:
    """Nothing more is readable; checked after a later marker arrived, so no guessing delay."""
    assert select.select([fd], [], [], 0)[0] == []


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as started:
        yield started


@pytest.fixture
def ends(pair: PtyPair) -> Iterator[tuple[int, int]]:
    a, b = open_end(pair.a_path), open_end(pair.b_path)
    yield a, b
    os.close(a)
    os.close(b)


def test_every_byte_value_crosses_both_ways_unchanged(pair: PtyPair, ends: tuple[int, int]) -> None:
    a, b = ends
    assert pair.a_path != pair.b_path
    payload = bytes(range(256)) + CONTROL * 3
    os.write(a, payload)
    assert read_exactly(b, len(payload)) == payload
    os.write(b, payload[::-1])
    assert read_exactly(a, len(payload)) == payload[::-1]
    # No echo: the writer does not read its own bytes back.
    os.write(b, b"!")
    assert read_exactly(a, 1) == b"!"
    assert_quiet(b)
    stats = pair.statistics()
    assert stats.relayed_to_b == len(payload)
    assert stats.relayed_to_a == len(payload) + 1


@settings(max_examples=25, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_a_stream_of_writes_arrives_in_order(chunks: list[bytes]) -> None:
    with PtyPair() as pair:
        a, b = open_end(pair.a_path), open_end(pair.b_path)
        try:
            for chunk in chunks:
                os.write(b, chunk)
            expected = b"".join(chunks)
            assert read_exactly(a, len(expected)) == expected
        finally:
            os.close(a)
            os.close(b)


def test_injected_bytes_reach_only_the_named_end(pair: PtyPair, ends: tuple[int, int]) -> None:
    a, b = ends
    pair.inject_to_a(b"\x01\x03noise")
    assert read_exactly(a, 7) == b"\x01\x03noise"
    pair.inject_to_b(b"xyz")
    assert read_exactly(b, 3) == b"xyz"
    os.write(b, b"marker")
    assert read_exactly(a, 6) == b"marker"
    assert_quiet(a)
    assert_quiet(b)


def test_tamper_rewrites_only_the_next_chunk_in_its_direction(
    pair: PtyPair, ends: tuple[int, int]
) -> None:
    a, b = ends
    pair.tamper_next_to_b(lambda chunk: b"<" + chunk + b">")
    os.write(b, b"back")  # the other direction is untouched
    assert read_exactly(a, 4) == b"back"
    os.write(a, b"one")
    assert read_exactly(b, 5) == b"<one>"
    os.write(a, b"two")
    assert read_exactly(b, 3) == b"two"


def test_tamper_can_drop_a_chunk(pair: PtyPair, ends: tuple[int, int]) -> None:
    a, b = ends
    dropped = threading.Event()

    def drop(_chunk: bytes) -> bytes:
        dropped.set()
        return b""

    pair.tamper_next_to_a(drop)
    os.write(b, b"lost")
    assert dropped.wait(5.0)
    os.write(b, b"kept")
    assert read_exactly(a, 4) == b"kept"
    assert_quiet(a)


def test_bytes_nobody_reads_are_dropped_and_counted_not_blocking(
    pair: PtyPair, ends: tuple[int, int]
) -> None:
    a, b = ends
    block = bytes(4096)
    sent = 0
    # End B never reads, so its input fills; the relay must keep draining A regardless.
    while pair.statistics().dropped_to_b == 0:
        select.select([], [a], [], 5.0)
        try:
            sent += os.write(a, block)
        except BlockingIOError:
            continue
        assert sent < 64 * 1024 * 1024, "nothing was ever dropped"
    # The other direction still flows while B's input is full.
    os.write(b, b"alive")
    assert read_exactly(a, 5) == b"alive"


def test_stop_releases_every_descriptor_and_the_relay_thread() -> None:
    before = set(os.listdir("/proc/self/fd"))
    pair = PtyPair().start()
    a = open_end(pair.a_path)
    opened = set(os.listdir("/proc/self/fd")) - before - {str(a)}
    assert len(opened) >= 4  # two masters, two slaves (plus the wake pipe)
    pair.stop()
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(int(fd))
    assert not [t for t in threading.enumerate() if t.name == "pty-pair-relay"]
    # A user still holding the device sees the line hang up, not silence forever.
    assert select.select([a], [], [], 5.0)[0] == [a]
    try:
        data = os.read(a, 1)
    except OSError:  # EIO on some kernels, end-of-file on others
        data = b""
    assert data == b""
    os.close(a)
    pair.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        pair.inject_to_a(b"x")


def test_restart_makes_a_new_working_pair() -> None:
    pair = PtyPair()
    with pair:
        pass
    with pair:
        a, b = open_end(pair.a_path), open_end(pair.b_path)
        try:
            os.write(a, b"again")
            assert read_exactly(b, 5) == b"again"
        finally:
            os.close(a)
            os.close(b)
