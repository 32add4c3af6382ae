"""Bad input: the right exception, raised in the caller, with a message that says what to do."""
import multiprocessing

import pytest

import ipckit
from ipckit import child, messages, run
from ipckit.lessons import faults, managers, start


def _ask_unknown_operation():
    with messages.PipeServer("fork", timeout=5) as server:
        server.ask("cube", 2)


def _ask_closed_server():
    server = messages.PipeServer("fork", timeout=5)
    server.close()
    server.ask("square", 2)


def _receive_on_closed_connection():
    receiver, sender = multiprocessing.Pipe()
    receiver.close()
    sender.close()
    run.receive(receiver, multiprocessing.current_process(), 1)


def _ask_two_lines():
    with child.LineChild(timeout=5) as talker:
        talker.ask("square 2\nsquare 3")


def _panel_without_function():
    from ipckit import widgets

    widgets.live_panel("draw", {})


CASES = [
    ("unknown start method", lambda: ipckit.get_context("threads"), ValueError, "valid start methods are fork, spawn"),
    ("start method not a string", lambda: ipckit.get_context(3), TypeError, "must be a string such as 'spawn'"),
    ("lambda under spawn", lambda: run.run_in_child(lambda: 1, start_method="spawn"), TypeError, "importable module"),
    ("worker not callable", lambda: run.run_in_child("nap", start_method="spawn"), TypeError, "must be a callable"),
    ("zero timeout", lambda: run.run_in_child(faults.nap, timeout=0), ValueError, "positive number of seconds"),
    ("args not a tuple", lambda: run.run_many([(faults.nap, [1])]), TypeError, r"\(func, args_tuple\)"),
    ("negative access count", lambda: managers.proxy_access_cost(accesses=-2), ValueError,
     "accesses must be at least 1"),
    ("fractional count", lambda: start.race(steps=2.5), TypeError, "steps must be a whole number"),
    ("bool as a count", lambda: start.race(workers=True), TypeError, "workers must be a whole number"),
    ("zero connect timeout", lambda: managers.bounded_client(("127.0.0.1", 9), timeout=0), ValueError,
     "positive number"),
    ("unknown pipe operation", _ask_unknown_operation, ValueError, "choose one of square, upper, sum"),
    ("ask a closed pipe server", _ask_closed_server, ValueError, "create a new one"),
    ("receive on a closed connection", _receive_on_closed_connection, ValueError, "open a new Pipe"),
    ("child program missing", lambda: child.LineChild(["no-such-program-xyz"]), FileNotFoundError, "check the name"),
    ("child command as a string", lambda: child.LineChild("python"), TypeError, "non-empty list"),
    ("request with a newline", _ask_two_lines, ValueError, "one line"),
    ("panel without a function", _panel_without_function, TypeError, "update must be a function"),
]


@pytest.mark.parametrize("make_error, kind, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_explained(make_error, kind, message):
    with pytest.raises(kind, match=message):
        make_error()
