"""Lesson 07's demo: a reader that acknowledges before it reads lets the writer overwrite the frame it holds."""
import pytest

from ipckit.lessons import shared_memory as lesson


@pytest.mark.timeout(60)
def test_acknowledging_after_the_read_keeps_every_frame(start_method):
    assert lesson.stream_frames("after", count=50, start_method=start_method, timeout=20) == 50


@pytest.mark.timeout(60)
def test_acknowledging_before_the_read_loses_frames(start_method):
    whole = lesson.stream_frames("before", count=50, start_method=start_method, timeout=20)
    assert whole < 50  # the writer wrote the next frame while the reader still held this one


def test_acknowledge_is_checked():
    with pytest.raises(ValueError, match="'before' or 'after'"):
        lesson.stream_frames("never")
