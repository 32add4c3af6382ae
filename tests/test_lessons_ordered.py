"""Lesson 08's workers and its loop, run as its cells run them, and its exercise check, under every start method."""
import collections
import contextlib
import functools
import itertools
import json
import pickle
import types
from multiprocessing.connection import wait
from pathlib import Path

import pytest

from ipckit import get_context, plots
from ipckit.lessons import ordered
from ipckit.watch import stop

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "08_ordered_pipeline.ipynb"
SOLUTION = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "08_ordered_pipeline.py"


def _recv(conn, timeout=20):
    assert conn.poll(timeout), "nothing arrived"
    return conn.recv()


def test_the_producer_sends_each_item_then_done(start_method):
    ctx = get_context(start_method)
    conn, producer_end = ctx.Pipe()
    producer = ctx.Process(target=ordered.produce, args=(producer_end, 5, 0.0))
    producer.start()
    producer_end.close()
    try:
        received = [_recv(conn) for _ in range(6)]
        producer.join(timeout=0.2)
        assert producer.is_alive(), "the producer should stay until STOP, so that its ending means a death"
        conn.send(ordered.STOP)
        producer.join(timeout=10)
    finally:
        stop(producer, grace=10)
        conn.close()
    assert received == [0, 1, 2, 3, 4, ordered.DONE]
    assert producer.exitcode == 0


def test_the_producer_stops_early_on_stop(start_method):
    ctx = get_context(start_method)
    conn, producer_end = ctx.Pipe()
    producer = ctx.Process(target=ordered.produce, args=(producer_end, 100_000, 0.001))
    producer.start()
    producer_end.close()
    try:
        assert _recv(conn) == 0
        conn.send(ordered.STOP)
        producer.join(timeout=10)
    finally:
        stop(producer, grace=10)
        conn.close()
    assert producer.exitcode == 0


def test_a_consumer_answers_each_item_with_its_number_until_stop(start_method):
    ctx = get_context(start_method)
    conn, child_end = ctx.Pipe()
    work = functools.partial(ordered.square_slowly, seconds=0)
    consumer = ctx.Process(target=ordered.consume, args=(child_end, work))
    consumer.start()
    child_end.close()
    try:
        for seq, item in [(0, 3), (1, 4), (7, 12)]:
            conn.send((seq, item))
            assert _recv(conn) == (seq, item * item)
        conn.send(ordered.STOP)
        consumer.join(timeout=10)
    finally:
        stop(consumer, grace=10)
        conn.close()
    assert consumer.exitcode == 0


def test_a_consumer_leaves_when_main_closes_its_end():
    ctx = get_context("spawn")  # under fork the child would hold a copy of main's end: only STOP or silence ends it
    conn, child_end = ctx.Pipe()
    consumer = ctx.Process(target=ordered.consume, args=(child_end, ordered.square_slowly))
    consumer.start()
    child_end.close()
    conn.close()
    stop(consumer, grace=10)
    assert consumer.exitcode == 0


def test_an_idle_consumer_leaves_after_its_idle_timeout(start_method):
    ctx = get_context(start_method)
    conn, child_end = ctx.Pipe()
    consumer = ctx.Process(target=ordered.consume, args=(child_end, ordered.square_slowly, 0.2))
    consumer.start()
    child_end.close()
    try:
        consumer.join(timeout=20)
    finally:
        stop(consumer, grace=10)
        conn.close()
    assert consumer.exitcode == 0


def test_square_or_die_squares_the_others_and_dies_on_its_item(start_method):
    assert ordered.square_or_die(3, bad=5, seconds=0) == 9
    ctx = get_context(start_method)
    conn, child_end = ctx.Pipe()
    work = functools.partial(ordered.square_or_die, bad=5, seconds=0)
    consumer = ctx.Process(target=ordered.consume, args=(child_end, work))
    consumer.start()
    child_end.close()
    try:
        conn.send((0, 2))
        assert _recv(conn) == (0, 4)
        conn.send((1, 5))
        consumer.join(timeout=10)
    finally:
        stop(consumer, grace=10)
        conn.close()
    assert consumer.exitcode == 3


def test_square_slowly_is_slower_on_every_fourth_item():
    assert [ordered.square_slowly(n, seconds=0) for n in range(5)] == [0, 1, 4, 9, 16]


def test_a_ticket_notes_when_it_is_pickled_and_arrives_whole():
    ordered.Ticket.sent.clear()
    copy = pickle.loads(pickle.dumps(ordered.Ticket(7)))
    assert [number for number, _ in ordered.Ticket.sent] == [7]
    result, finished = ordered.square_ticket(copy)
    assert result == 49 and finished > ordered.Ticket.sent[0][1]
    ordered.Ticket.sent.clear()


def _lesson_loop(start_method):
    """The lesson's ordered_loop, taken from its cell and run with a context of ``start_method``."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    codes = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    source = next(code for code in codes if "def ordered_loop" in code)
    namespace = {
        "contextlib": contextlib, "deque": collections.deque, "wait": wait, "ordered": ordered,
        "ctx": get_context(start_method),
    }
    exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace["ordered_loop"]


def test_the_lessons_loop_keeps_the_hand_off_order_and_only_feeds_idle_consumers(start_method):
    ordered_loop = _lesson_loop(start_method)
    log = []
    results = list(ordered_loop(12, consumers=3, work=functools.partial(ordered.square_slowly, seconds=0.01), log=log))
    assert results == [n * n for n in range(12)]
    assert [seq for seq, _, _ in log] == list(range(12))
    assert {name for _, name, _ in log} <= {"consumer-0", "consumer-1", "consumer-2"}


def test_the_lessons_loop_lets_the_producer_leave_once_it_is_done(start_method):
    """A producer that ends right after DONE, while the consumers still work, is not a death."""
    ordered_loop = _lesson_loop(start_method)
    leaves_at_once = types.SimpleNamespace(**vars(ordered))
    leaves_at_once.produce = functools.partial(ordered.produce, interval=0.0, idle_timeout=0.0)
    ordered_loop.__globals__["ordered"] = leaves_at_once
    results = list(ordered_loop(8, consumers=1, work=functools.partial(ordered.square_slowly, seconds=0.05)))
    assert results == [n * n for n in range(8)]


def test_the_lessons_loop_raises_at_once_when_a_consumer_dies(start_method):
    ordered_loop = _lesson_loop(start_method)
    got = []
    with pytest.raises(ChildProcessError, match="consumer-0 died with exit code 3"):
        for result in ordered_loop(10, consumers=1, work=functools.partial(ordered.square_or_die, bad=4, seconds=0.01)):
            got.append(result)
    assert got == [0, 1, 4, 9]


def test_the_lessons_loop_stops_its_children_when_the_caller_leaves_early(start_method):
    ordered_loop = _lesson_loop(start_method)
    loop = ordered_loop(1_000, consumers=2, work=functools.partial(ordered.square_slowly, seconds=0.01))
    with contextlib.closing(loop):
        assert [next(loop) for _ in range(3)] == [0, 1, 4]
    # the leak guard checks that no child survives


def _solution():
    namespace = {}
    exec(compile(SOLUTION.read_text(), str(SOLUTION), "exec"), namespace)
    return namespace["in_order"]


def test_the_check_passes_the_solution(start_method, capsys):
    assert ordered.check_in_order(_solution(), start_method) is True
    assert capsys.readouterr().out.startswith("Right")


def skeleton(conns, processes, count, timeout):
    raise NotImplementedError("write it")


def in_arrival_order(conns, processes, count, timeout):
    ended = {process.sentinel: process for process in processes}
    for _ in range(count):
        ready = wait(list(conns) + list(ended), timeout=timeout)
        if set(ready) & set(ended):
            raise ChildProcessError("a worker died")
        yield ready[0].recv()[1]


def as_pairs(conns, processes, count, timeout):
    early, next_seq = {}, 0
    while next_seq < count:
        for conn in wait(list(conns), timeout=timeout):
            seq, value = conn.recv()
            early[seq] = (seq, value)
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1


@pytest.mark.parametrize(
    "in_order, verdict",
    [
        (skeleton, "Not yet: write it"),
        (in_arrival_order, "Wrong: in_order gave"),
        (as_pairs, "Wrong: in_order gave [(0, 0), (1, 1), (2, 4)]...: yield the values alone"),
        ("not a function", "Wrong: in_order should be a function"),
    ],
    ids=["skeleton", "arrival-order", "pairs", "not-callable"],
)
def test_the_check_says_what_is_wrong(in_order, verdict, capsys):
    assert ordered.check_in_order(in_order, "spawn") is False
    out = capsys.readouterr().out
    assert out.startswith(verdict), out
    assert "Right" not in out


WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"


def _wrong_answer(label):
    namespace = {}
    path = WRONG / f"08_ordered_pipeline__{label}.py"
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["in_order"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "label, verdict",
    [
        ("naps_between_polls", "Wrong: while nothing happened for 0.5 s, in_order looked at each pipe"),
        ("no_timeout_error", "Wrong: the workers stayed alive but sent nothing"),
        ("watches_one_sentinel", "Wrong: worker-1 died (exit code 3) and in_order was still waiting"),
    ],
)
def test_the_check_catches_polling_a_missing_timeout_and_a_missed_death(label, verdict, start_method, capsys):
    assert ordered.check_in_order(_wrong_answer(label), start_method) is False
    out = capsys.readouterr().out
    assert out.startswith(verdict), out


def test_timeline_colours_do_not_repeat_and_neighbours_differ():
    colours = [plots._item_colour(seq) for seq in range(200)]
    assert len(set(colours)) == 200
    for before, after in itertools.pairwise(colours):
        assert sum(abs(a - b) for a, b in zip(before, after, strict=True)) > 0.3  # neighbours look different
