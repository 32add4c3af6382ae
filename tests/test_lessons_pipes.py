"""Lesson 04's workers, run the way its cells run them, and its exercise check, under every start method."""
from multiprocessing import BufferTooShort
from multiprocessing.connection import wait

import numpy as np
import pytest

from ipckit import get_context
from ipckit.lessons import pipes
from ipckit.watch import stop


def _ask(conn, request, timeout=10):
    conn.send(request)
    assert conn.poll(timeout), f"no reply to {request!r}"
    return conn.recv()


def test_request_and_reply(start_method):
    ctx = get_context(start_method)
    conn, server_end = ctx.Pipe()
    server = ctx.Process(target=pipes.serve, args=(server_end, 30), daemon=True)
    server.start()
    server_end.close()
    try:
        assert _ask(conn, ("square", 12)) == ("ok", 144)
        assert _ask(conn, ("upper", "two-way")) == ("ok", "TWO-WAY")
        assert _ask(conn, ("sum", "ab"))[0] == "error"  # a bad request gets an error reply...
        assert _ask(conn, ("cube", 2)) == ("error", "ValueError: unknown operation 'cube'")
        assert _ask(conn, ("sum", [1, 2, 3])) == ("ok", 6)  # ... and the server keeps serving
        conn.send(pipes.STOP)
        server.join(timeout=10)
    finally:
        stop(server, grace=10)
        conn.close()
    assert server.exitcode == 0


def test_the_server_leaves_when_the_parent_closes_its_end():
    ctx = get_context("spawn")  # under fork the child would hold a copy of the parent's end: only STOP or idle ends it
    conn, server_end = ctx.Pipe()
    server = ctx.Process(target=pipes.serve, args=(server_end, 30), daemon=True)
    server.start()
    server_end.close()
    conn.close()
    stop(server, grace=10)
    assert server.exitcode == 0


def test_an_idle_server_leaves_after_its_idle_timeout(start_method):
    ctx = get_context(start_method)
    conn, server_end = ctx.Pipe()
    server = ctx.Process(target=pipes.serve, args=(server_end, 0.3), daemon=True)
    server.start()
    server_end.close()
    try:
        server.join(timeout=20)
    finally:
        stop(server, grace=10)
        conn.close()
    assert server.exitcode == 0


def test_poll_waits_for_a_late_message(start_method):
    ctx = get_context(start_method)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=pipes.send_after, args=(sender, 0.3, "hello"))
    child.start()
    sender.close()
    try:
        assert receiver.poll(0) is False
        assert receiver.poll(20) is True
        assert receiver.recv() == "hello"
        with pytest.raises(OSError, match="read-only"):
            receiver.send("back")  # duplex=False: this end only receives
    finally:
        stop(child, grace=10)
        receiver.close()


def _read_messages(receiver, expected, size):
    """What the lesson's cell does: count intact and corrupted messages until the stream ends or breaks."""
    intact = corrupted = 0
    ending = "every message read"
    try:
        while intact + corrupted < expected and receiver.poll(10):
            message = receiver.recv_bytes(maxlength=size)
            if len(message) == size and message.count(message[:1]) == size:
                intact += 1
            else:
                corrupted += 1
    except (EOFError, OSError) as exc:
        ending = f"{type(exc).__name__}: {exc}"
    return intact, corrupted, ending


@pytest.mark.timeout(60)
def test_two_writers_on_one_end_corrupt_big_messages(start_method):
    ctx = get_context(start_method)
    receiver, sender = ctx.Pipe(duplex=False)
    start_line = ctx.Barrier(2)
    size, count = 1_000_000, 10
    writers = [ctx.Process(target=pipes.send_many, args=(sender, start_line, letter, count, size))
               for letter in (b"A", b"B")]
    for writer in writers:
        writer.start()
    sender.close()
    try:
        intact, corrupted, ending = _read_messages(receiver, 2 * count, size)
    finally:
        receiver.close()
        stop(writers, grace=1)  # under fork the writers hold the reading end too: they block until stopped
    assert intact < 2 * count
    assert corrupted > 0 or ending != "every message read"


@pytest.mark.timeout(60)
def test_one_pipe_per_writer_keeps_every_message(start_method):
    ctx = get_context(start_method)
    start_line = ctx.Barrier(2)
    size, count = 1_000_000, 10
    receivers, writers = [], []
    for letter in (b"A", b"B"):
        receiver, sender = ctx.Pipe(duplex=False)
        writers.append(ctx.Process(target=pipes.send_many, args=(sender, start_line, letter, count, size)))
        writers[-1].start()
        sender.close()
        receivers.append(receiver)
    intact = 0
    try:
        open_ends = list(receivers)
        while open_ends:
            ready = wait(open_ends, timeout=10)
            assert ready, "nothing arrived within 10 s"
            for receiver in ready:
                try:
                    message = receiver.recv_bytes(maxlength=size)
                except EOFError:
                    open_ends.remove(receiver)
                    continue
                assert len(message) == size and message.count(message[:1]) == size
                intact += 1
    finally:
        for receiver in receivers:
            receiver.close()
        stop(writers, grace=10)
    assert intact == 2 * count


def test_raw_bytes_into_a_preallocated_array(start_method):
    ctx = get_context(start_method)
    for buffer_count in (10_000, 100):
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=pipes.send_array, args=(sender, 10_000))
        child.start()
        sender.close()
        try:
            assert receiver.poll(20)
            out = np.zeros(buffer_count)
            if buffer_count == 10_000:
                assert receiver.recv_bytes_into(out) == 80_000
                assert np.array_equal(out, np.arange(10_000.0))
            else:
                with pytest.raises(BufferTooShort) as caught:
                    receiver.recv_bytes_into(out)
                assert len(caught.value.args[0]) == 80_000  # the message travels inside the exception
        finally:
            stop(child, grace=10)
            receiver.close()


def test_wait_sees_replies_and_deaths_as_they_happen(start_method):
    ctx = get_context(start_method)
    start_line = ctx.Barrier(4)
    plan = {
        "a": (pipes.reply_after, 0.2, "result of a"),
        "b": (pipes.die_after, 0.5, 3),
        "c": (pipes.reply_after, 0.8, "result of c"),
    }
    workers, receivers = {}, {}
    for name, (target, delay, value) in plan.items():
        receivers[name], sender = ctx.Pipe(duplex=False)
        workers[name] = ctx.Process(target=target, args=(sender, start_line, delay, value))
        workers[name].start()
        sender.close()
    events = []
    try:
        start_line.wait(timeout=20)
        pending = set(plan)
        while pending:
            handles = {receivers[n]: n for n in pending} | {workers[n].sentinel: n for n in pending}
            ready = wait(list(handles), timeout=20)
            assert ready
            for name in sorted({handles[h] for h in ready}):
                try:
                    events.append((name, receivers[name].recv()))
                except EOFError:
                    workers[name].join(timeout=5)
                    events.append((name, workers[name].exitcode))
                pending.discard(name)
    finally:
        for name in plan:
            stop(workers[name], grace=10)
            receivers[name].close()
    assert events == [("a", "result of a"), ("b", 3), ("c", "result of c")]


# --- the exercise check ----------------------------------------------------------------


def right_ask(conn, request, timeout):
    conn.send(request)
    if not conn.poll(timeout):
        raise TimeoutError(f"no reply to {request!r} within {timeout} s")
    return conn.recv()


def recv_without_poll(conn, request, timeout):
    conn.send(request)
    return conn.recv()


def poll_without_timeout(conn, request, timeout):
    conn.send(request)
    if not conn.poll():
        raise TimeoutError("no reply")
    return conn.recv()


@pytest.mark.timeout(120)
def test_the_check_passes_a_right_ask(start_method, capsys):
    assert pipes.check_ask(right_ask, start_method) is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "ask, verdict",
    [(recv_without_poll, "Wrong: the server took"), (poll_without_timeout, "Wrong: ask(conn, ")],
    ids=["recv-without-poll", "poll-without-timeout"],
)
def test_the_check_says_what_is_wrong(ask, verdict, capsys):
    """Under spawn, as in the lesson (tests/test_exercises.py runs more wrong answers)."""
    assert pipes.check_ask(ask, "spawn") is False
    assert capsys.readouterr().out.startswith(verdict)
