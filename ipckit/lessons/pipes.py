"""Lesson 04, Pipe: what its children run, and the check of its exercise.

Each worker is short stdlib code (numpy for the raw-bytes one) that the lesson
shows with ``ipckit.show`` right where a cell starts it in a child process.
"""
import os
import time

import numpy as np

from ..context import get_context
from .checking import CountedConnection, Wrong, call_in_thread, exercise_check, learner_raised

STOP = None  # the request that ends the server


# --- 1. request and reply -------------------------------------------------------------


def answer(operation, argument):
    """The server's whole logic: the reply to one request."""
    if operation == "square":
        return argument * argument
    if operation == "upper":
        return argument.upper()
    if operation == "sum":
        return sum(argument)
    if operation == "sleep":
        time.sleep(argument)
        return "awake"
    raise ValueError(f"unknown operation {operation!r}")


def serve(conn, idle_timeout):
    """Answer (operation, argument) requests until STOP, the parent closing its end, or idle_timeout s of silence."""
    with conn:
        while conn.poll(idle_timeout):  # True when a request or the end of the pipe is there
            try:
                request = conn.recv()
            except EOFError:
                return  # the parent closed its end
            if request is STOP:
                return
            try:
                conn.send(("ok", answer(*request)))
            except Exception as exc:  # a bad request gets an error reply; the server keeps serving
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


# --- 2. poll --------------------------------------------------------------------------


def send_after(conn, delay, message):
    """Send one message after ``delay`` seconds, then close this end."""
    time.sleep(delay)
    conn.send(message)
    conn.close()


# --- 3. one end, two writers ----------------------------------------------------------


def send_many(conn, start_line, letter, count, size):
    """Send ``count`` messages of ``size`` bytes, every byte ``letter``, at the same moment as the other writers."""
    start_line.wait(timeout=10)
    try:
        for _ in range(count):
            conn.send_bytes(letter * size)
    except BrokenPipeError:
        pass  # the reader gave up on a broken stream and closed its end


# --- 4. raw bytes ---------------------------------------------------------------------


def send_array(conn, count):
    """Send the raw bytes of a float64 array 0 .. count-1: no pickle."""
    conn.send_bytes(np.arange(count, dtype=np.float64))
    conn.close()


# --- 5. waiting on many ---------------------------------------------------------------


def reply_after(conn, start_line, delay, message):
    """Once every worker runs, wait ``delay`` seconds and send ``message``."""
    start_line.wait(timeout=10)
    time.sleep(delay)
    conn.send(message)


def die_after(conn, start_line, delay, exitcode):
    """Once every worker runs, wait ``delay`` seconds and die without a word."""
    start_line.wait(timeout=10)
    time.sleep(delay)
    os._exit(exitcode)


# --- the exercise: ask a server, give up after a timeout ------------------------------

SLOW = 2.0  # seconds the server takes to answer the request the learner's ask must give up on
GIVE_UP_AFTER = 0.5
LATE = 1.5  # seconds after the server's reply by which the learner's ask must have returned it
SPINNING = 0.15  # a waiting loop that uses more than this share of a core is polling, not blocking
LOOKS = 3  # times ask may look at the pipe while it waits for the slow reply; poll(timeout) looks once


def _still_waiting(request, timeout, waited):
    return Wrong(
        f"ask(conn, {request!r}, timeout={timeout}) was still waiting {waited:.0f} s later: "
        "wait for the reply with conn.poll(timeout), then recv() once."
    )


def _ask_right_away(ask, conn, request, timeout, expected, replied_after):
    """The learner's ask must return the server's reply as soon as it comes, at once or a little later."""
    result = call_in_thread(ask, (conn, request, timeout), timeout + 5)
    if result is None:
        raise _still_waiting(request, timeout, timeout + 5)
    outcome, wall_s, _ = result
    learner_raised(outcome, f"ask(conn, {request!r}, timeout={timeout})", lambda exc: (
        f"ask(conn, {request!r}, timeout={timeout}) raised TimeoutError after {wall_s:.2f} s, though the "
        "server replied in well under a second: conn.poll() with no argument does not wait; "
        "conn.poll(timeout) does."
    ))
    if outcome[1] != expected:
        raise Wrong(
            f"ask(conn, {request!r}, timeout={timeout}) returned {outcome[1]!r}; the server replied {expected!r}. "
            "Return what conn.recv() gives."
        )
    if wall_s > replied_after + LATE:
        raise Wrong(
            f"ask(conn, {request!r}, timeout={timeout}) returned the reply after {wall_s:.1f} s, though the server "
            f"sent it after about {replied_after} s: conn.poll(timeout) returns the moment the reply is there; "
            "do not sleep for the timeout."
        )


@exercise_check
def check_ask(ask, start_method=None):
    """Run the learner's ``ask`` against a server child: quick replies, a late one, and one too slow to wait for."""
    if not callable(ask):
        raise Wrong("ask should be a function ask(conn, request, timeout); run the exercise cell first.")
    ctx = get_context(start_method)
    conn, server_end = ctx.Pipe()
    conn.__class__ = CountedConnection  # counts the learner's poll() calls; this end stays here
    server = ctx.Process(target=serve, args=(server_end, 30), daemon=True)
    server.start()
    server_end.close()
    try:
        _ask_right_away(ask, conn, ("square", 12), 3, ("ok", 144), replied_after=0)
        _ask_right_away(ask, conn, ("sleep", 0.3), 3, ("ok", "awake"), replied_after=0.3)

        request = ("sleep", SLOW)
        conn.looks = 0
        result = call_in_thread(ask, (conn, request, GIVE_UP_AFTER), SLOW + 3)
        if result is None:
            raise _still_waiting(request, GIVE_UP_AFTER, SLOW + 3)
        outcome, wall_s, cpu_s = result
        if outcome[0] == "returned":
            raise Wrong(
                f"the server took {SLOW:.0f} s to reply to {request!r}, and ask(conn, {request!r}, "
                f"timeout={GIVE_UP_AFTER}) waited {wall_s:.1f} s and returned {outcome[1]!r}: give up when "
                "conn.poll(timeout) returns False, by raising TimeoutError."
            )
        exc = outcome[1]
        if not isinstance(exc, TimeoutError):
            raise Wrong(
                f"ask(conn, {request!r}, timeout={GIVE_UP_AFTER}) raised {type(exc).__name__}: {exc}; "
                "when no reply comes within the timeout, raise TimeoutError."
            )
        if wall_s > GIVE_UP_AFTER + 1:
            raise Wrong(f"ask gave up after {wall_s:.1f} s, long after its timeout of {GIVE_UP_AFTER} s.")
        if wall_s < GIVE_UP_AFTER * 0.8:
            raise Wrong(f"ask gave up after {wall_s:.2f} s, before its timeout of {GIVE_UP_AFTER} s.")
        if cpu_s > SPINNING * wall_s:
            raise Wrong(
                f"while it waited, ask kept {cpu_s / wall_s:.0%} of a core busy: it polls in a loop. "
                "conn.poll(timeout) sleeps until the reply comes or the time is up."
            )
        if conn.looks > LOOKS:
            raise Wrong(
                f"while it waited {wall_s:.2f} s for the slow reply, ask looked at the pipe {conn.looks} times: "
                "it polls (a nap between the looks only makes it slower to notice the reply). "
                "One conn.poll(timeout) sleeps until the reply comes or the time is up."
            )
    finally:
        server.terminate()  # it may still be answering the slow request; a learner's recv() then sees EOF
        server.join(timeout=5)
        conn.close()
    return (
        f"ask returned both replies, and gave up on the slow one with TimeoutError after {wall_s:.2f} s "
        f"(timeout {GIVE_UP_AFTER} s), using {cpu_s / wall_s:.0%} of a core while it waited."
    )
