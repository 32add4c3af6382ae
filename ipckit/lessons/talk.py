"""Lesson 05, subprocess: the child program its cells talk to, the threads they start, and the check of its exercise.

Run as ``python -m ipckit.lessons.talk``, this module is the child program: it
reads one request per line on stdin and writes one reply per line on stdout,
flushing each, so a parent can talk to it in real time. Requests: ``square N``,
``upper TEXT``, ``echo TEXT``, ``sleep SECONDS``, ``exit CODE``, ``crash``, and
``hold-stdout SECONDS`` (start a program of its own that keeps this child's
stdout open for SECONDS, as a shell's background job does). End of input ends
it with code 0.

A pipe has no read timeout, so a thread in the parent reads the child's output
and hands each line over through a ``queue.Queue``, whose ``get(timeout=...)``
has one. (:class:`ipckit.child.LineChild` packs the parent's side.)
"""
import subprocess
import sys
import time

import psutil

from .checking import Wrong, call_in_thread, exercise_check, learner_raised

PROGRAM = "ipckit.lessons.talk"  # run as python -m ipckit.lessons.talk


# --- the child program ------------------------------------------------------------------


def answer(line):
    """The reply to one request line (the child's whole logic)."""
    command, _, argument = line.strip().partition(" ")
    if command == "square":
        return str(int(argument) ** 2)
    if command == "upper":
        return argument.upper()
    if command == "echo":
        return argument
    if command == "sleep":
        time.sleep(float(argument))
        return "awake"
    if command == "exit":
        sys.stdout.flush()
        sys.exit(int(argument))
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "hold-stdout":
        holder = subprocess.Popen(  # inherits this child's stdout, and keeps it open after this child exits
            [sys.executable, "-c", f"import time; time.sleep({float(argument)})"], stdin=subprocess.DEVNULL
        )
        return f"holder {holder.pid}"
    return f"error: unknown request {command!r}"


def serve(stdin=sys.stdin, stdout=sys.stdout):
    """Answer each request line with one reply line, until the end of input."""
    for line in stdin:
        stdout.write(answer(line) + "\n")
        stdout.flush()  # without this the reply waits in a buffer and the parent waits for ever


# --- the parent's threads --------------------------------------------------------------


def read_lines(stream, lines):
    """Thread: put each line of ``stream`` on ``lines`` (without its newline), then None at end of file."""
    with stream:
        for line in stream:
            lines.put(line.rstrip("\n"))
    lines.put(None)


def write_all(stream, text):
    """Thread: write ``text`` to ``stream``; a child killed meanwhile only ends the writing."""
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


# --- the exercise: talk to a child line by line ---------------------------------------

GIVE_UP_AFTER = 0.5
SLOW = 3  # seconds the child sleeps on the request the learner's talk must give up on
PACED = (["echo ready"] + ["sleep 0.4"] * 4, 1.2)  # (requests, timeout): each reply in time, all of them not


def _talkers():
    """The child programs (``ipckit.lessons.talk``) this process started that still run (zombies are over)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if PROGRAM in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _left_running(before, settle=1.0):
    """The new child programs still running after ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        left = [p for p in _talkers() if p.pid not in before]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _stop(processes):
    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _run(talk, requests, timeout, bound):
    """Run the learner's talk; stop the children it leaves, so a hung call ends; say what happened."""
    before = {p.pid for p in _talkers()}
    result = call_in_thread(talk, (requests, timeout), bound)
    left = _left_running(before, settle=0 if result is None else 1.0)
    _stop(left)
    if result is None:
        raise Wrong(
            f"talk({requests!r}, timeout={timeout}) was still running {bound:.0f} s later: read each reply "
            "with a timeout (replies.get(timeout=timeout)), never with a bare readline()."
        )
    return result, left


@exercise_check
def check_talk(talk):
    """Run the learner's ``talk`` for real: quick replies, then a request the child takes too long to answer."""
    if not callable(talk):
        raise Wrong("talk should be a function talk(requests, timeout); run the exercise cell first.")
    requests = ["square 12", "upper line by line", "echo done"]
    expected = ["144", "LINE BY LINE", "done"]
    (outcome, wall_s, _), left = _run(talk, requests, 5, 15)
    learner_raised(outcome, f"talk({requests!r}, timeout=5)", lambda exc: (
        f"talk({requests!r}, timeout=5) raised TimeoutError: {exc}. The child answers at once, so its "
        "request never reached it: flush stdin after each line (or open it with bufsize=1)."
    ))
    if outcome[1] != expected:
        raise Wrong(f"talk({requests!r}, timeout=5) returned {outcome[1]!r}; the child replied {expected!r}.")
    if left:
        raise Wrong(
            "talk returned the right replies but left the child running: close its stdin and wait(timeout=...) "
            "for it to exit."
        )

    requests, timeout = PACED
    (outcome, wall_s, _), left = _run(talk, requests, timeout, 15)
    if outcome[0] == "raised" and isinstance(outcome[1], TimeoutError):
        raise Wrong(
            f"talk({requests!r}, timeout={timeout}) raised TimeoutError after {wall_s:.1f} s, though the child "
            f"answers each of those requests within 0.4 s: the timeout is for each reply, not for the whole talk "
            "(communicate(timeout=...) gives all of them one deadline). Write a line, read its reply with "
            "replies.get(timeout=timeout), then the next."
        )
    if outcome[0] == "raised":
        raise Wrong(f"talk({requests!r}, timeout={timeout}) raised {type(outcome[1]).__name__}: {outcome[1]}")
    if outcome[1] != ["ready"] + ["awake"] * 4:
        raise Wrong(f"talk({requests!r}, timeout={timeout}) returned {outcome[1]!r}; the child replied "
                    f"{['ready'] + ['awake'] * 4!r}.")
    if left:
        raise Wrong("talk returned the right replies but left the child running: close its stdin and "
                    "wait(timeout=...) for it to exit.")

    # six quick requests first: one deadline for the whole talk (timeout * len(requests)) outlasts the sleep
    requests = [f"echo {number}" for number in range(1, 7)] + [f"sleep {SLOW}", "echo never sent"]
    (outcome, wall_s, _), left = _run(talk, requests, GIVE_UP_AFTER, SLOW + 5)
    if outcome[0] == "returned":
        raise Wrong(
            f"the child takes {SLOW} s to answer 'sleep {SLOW}', and talk({requests!r}, timeout={GIVE_UP_AFTER}) "
            f"waited {wall_s:.1f} s and returned {outcome[1]!r}: raise TimeoutError when a reply does not come "
            "within the timeout."
        )
    exc = outcome[1]
    if not isinstance(exc, TimeoutError):
        raise Wrong(
            f"talk({requests!r}, timeout={GIVE_UP_AFTER}) raised {type(exc).__name__}: {exc}; when a reply does "
            "not come within the timeout, raise TimeoutError."
        )
    if wall_s > SLOW - 0.5:
        raise Wrong(
            f"talk raised TimeoutError only after {wall_s:.1f} s, though its timeout was {GIVE_UP_AFTER} s: read each "
            "reply with replies.get(timeout=timeout), and when cleaning up, wait(timeout=...) then kill() a child "
            "that is still busy instead of waiting for it."
        )
    if left:
        raise Wrong(
            f"talk raised TimeoutError as it should, but left the child running (still busy with 'sleep {SLOW}'): "
            "in a finally block, close stdin, wait(timeout=...), and kill() the child if it has not exited."
        )
    return (
        f"talk got every reply line by line, raised TimeoutError on the slow one ({wall_s:.1f} s in all, "
        "stopping the child included), and left no child running."
    )


if __name__ == "__main__":
    serve()
