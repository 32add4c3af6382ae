"""ipckit.watch, the one core for waiting and stopping: waits end in time, a dead child is noticed at once,
a whole buffer goes through a pipe or the wait gives up, children stop however stubborn."""
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from ipckit.errors import WorkerDied, WorkerTimeout
from ipckit.watch import Watch, read_into, receive, stop, wait_for, write_all


def _started(ctx, target, *args):
    process = ctx.Process(target=target, args=args)
    process.start()
    return process


def test_wait_for_returns_when_something_arrives_and_times_out_when_nothing_does(start_method):
    ctx = multiprocessing.get_context(start_method)
    reader, writer = ctx.Pipe(duplex=False)
    sleeper = _started(ctx, time.sleep, 20)
    try:
        began = time.monotonic()
        with pytest.raises(WorkerTimeout, match=r"no greeting from .* within 0\.3 s") as info:
            wait_for(reader, sleeper, 0.3, "greeting")
        assert 0.25 < time.monotonic() - began < 5 and info.value.waiting_for == "greeting"
        with pytest.raises(TimeoutError, match=r"^no greeting within 0\.1 s$"):
            wait_for(reader, None, 0.1, "greeting")  # no process: a plain TimeoutError
        writer.send("hello")
        wait_for(reader, sleeper, 0.3, "greeting")
        assert receive(reader, sleeper, 0.3) == "hello"
    finally:
        stop(sleeper, grace=0)
        reader.close()
        writer.close()


def test_a_child_that_dies_is_noticed_at_once_not_after_the_timeout(start_method):
    ctx = multiprocessing.get_context(start_method)
    reader, writer = ctx.Pipe(duplex=False)  # this process keeps the writing end: no EOF will come
    try:
        dying = _started(ctx, os._exit, 9)
        began = time.monotonic()
        with pytest.raises(WorkerDied, match=r"exit code 9") as info:
            receive(reader, dying, 30, "reply")
        assert time.monotonic() - began < 10 and info.value.exitcode == 9
    finally:
        reader.close()
        writer.close()


def test_a_message_sent_before_the_child_exited_still_counts():
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    writer.send("last words")
    done = _started(ctx, os._exit, 0)
    done.join(10)
    try:
        assert receive(reader, done, 5, "reply") == "last words"
    finally:
        reader.close()
        writer.close()


def test_receive_without_a_process_says_the_other_end_closed():
    reader, writer = multiprocessing.Pipe(duplex=False)
    writer.close()
    with pytest.raises(EOFError, match="closed before sending the reply"):
        receive(reader, None, 1, "reply")
    reader.close()
    with pytest.raises(ValueError, match="connection is closed"):
        receive(reader, None, 1)


def test_write_all_and_read_into_move_every_byte():
    read_fd, write_fd = os.pipe()
    data = (np.arange(1_000_000) % 251).astype(np.uint8)  # far more than a pipe holds: they must take turns
    target = np.zeros_like(data)
    ctx = multiprocessing.get_context("fork")
    writer = ctx.Process(target=write_all, args=(write_fd, data, 10))
    writer.start()
    try:
        os.close(write_fd)
        read_into(read_fd, target, 10, writer)
        assert np.array_equal(target, data)
        with pytest.raises(WorkerDied):  # the writer has finished: nothing more will come
            read_into(read_fd, bytearray(1), 10, writer)
    finally:
        stop(writer)
        os.close(read_fd)


def test_write_all_gives_up_in_time_when_nobody_reads():
    read_fd, write_fd = os.pipe()
    try:
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no room for data \([\d,]+ of 1,000,000 bytes written\) within 0\.3 s"):
            write_all(write_fd, bytes(1_000_000), timeout=0.3)
        assert time.monotonic() - began < 5
        assert os.get_blocking(write_fd)  # left as it was found
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_write_all_to_a_reader_that_has_gone_is_a_broken_pipe():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        with pytest.raises(BrokenPipeError):
            write_all(write_fd, b"x" * 100, timeout=1)
        with pytest.raises(BrokenPipeError):
            write_all(write_fd, b"x" * 100)
    finally:
        os.close(write_fd)


def test_read_into_without_a_process_says_how_much_came():
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"abc")
    os.close(write_fd)
    try:
        with pytest.raises(EOFError, match="after 3 of 10 bytes of header"):
            read_into(read_fd, bytearray(10), 1, None, "header")
    finally:
        os.close(read_fd)


def _ignore_sigterm_then_sleep(seconds):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def test_stop_lets_a_child_finish_then_terminates_then_kills(start_method):
    ctx = multiprocessing.get_context(start_method)
    finished = _started(ctx, time.sleep, 0.1)
    sleeper = _started(ctx, time.sleep, 30)
    never_started = ctx.Process(target=time.sleep, args=(1,))
    began = time.monotonic()
    stop([finished, sleeper, never_started], grace=1.0)
    assert finished.exitcode == 0 and sleeper.exitcode == -signal.SIGTERM
    assert time.monotonic() - began < 10
    stop(sleeper)  # twice is fine


def test_stop_kills_a_child_that_ignores_terminate():
    ctx = multiprocessing.get_context("fork")  # the worker is defined here: fork needs no import
    stubborn = _started(ctx, _ignore_sigterm_then_sleep, 30)
    time.sleep(0.3)  # let it ignore SIGTERM first
    began = time.monotonic()
    stop(stubborn, grace=0.5)
    assert stubborn.exitcode == -signal.SIGKILL and time.monotonic() - began < 10


def test_watch_keeps_one_selector_over_pipes_and_sentinels():
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = _started(ctx, time.sleep, 0.2)
    try:
        with Watch([reader, child.sentinel]) as watch:
            assert watch.ready(0) == []
            writer.send(1)
            assert watch.ready(1) == [reader]
            reader.recv()
            assert watch.ready(10) == [child.sentinel]
            watch.forget(child.sentinel)
            watch.want_write(writer)
            assert watch.ready(0) == [writer]
            watch.want_write(writer, False)
            assert watch.ready(0) == []
    finally:
        stop(child)
        reader.close()
        writer.close()
