"""Streaming: the sender keeps sending while the reader still holds the array recv() returned.

The contract every transport keeps: an array returned by ``recv()`` stays intact
until the receiver's next ``recv()`` (or ``release()``), whatever the sender does
meanwhile. Lock-step tests (send, wait for the receipt, send again) cannot see a
transport that breaks it; these stream.
"""
import numpy as np
import pytest

from ipckit import arrays, bench

NAMES = list(arrays.TRANSPORTS)
FRAMES = 40  # 240 x 320 uint8 frames, as a camera would send them


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", NAMES)
def test_every_frame_stays_intact_while_the_reader_holds_it(name, start_method):
    if start_method not in arrays.TRANSPORTS[name].start_methods:
        pytest.skip(f"{name} needs {arrays.TRANSPORTS[name].start_methods}")
    result = arrays.stream_check(name, count=FRAMES, hold=0.001, start_method=start_method, timeout=60)
    assert result["torn"] == []
    assert result["intact"] == result["frames"] == FRAMES


def test_stream_frames_differ_in_every_byte():
    pattern = arrays.stream_pattern((4, 300))
    first, second = arrays.stream_frame(pattern, 0), arrays.stream_frame(pattern, 1)
    assert first.dtype == np.uint8 and not np.any(first == second)
    assert np.array_equal(arrays.stream_frame(pattern, 256), first)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_check_fails_when_the_receiver_releases_before_the_read(method):
    """The old shared_memory acknowledged inside recv(): a streaming sender then wrote over the held frame."""
    unsafe = bench.released_early("shared_memory")
    result = arrays.stream_check(unsafe, count=FRAMES, hold=0.001, start_method=method, timeout=30)
    assert len(result["torn"]) > FRAMES // 2  # the sender wrote over most frames while they were held
