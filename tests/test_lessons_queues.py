"""Lesson 03's workers, run the way its cells run them, and its exercise check, under every start method."""
import threading
import time

import pytest

from ipckit import get_context
from ipckit.lessons import queues
from ipckit.watch import stop


def test_producer_and_consumer_with_a_sentinel(start_method):
    ctx = get_context(start_method)
    items, results = ctx.Queue(), ctx.Queue()
    producer = ctx.Process(target=queues.produce, args=(items, 500))
    consumer = ctx.Process(target=queues.consume, args=(items, results, 10))
    producer.start()
    consumer.start()
    try:
        assert results.get(timeout=20) == (500, sum(range(500)))
    finally:
        stop([producer, consumer], grace=10)
    assert (producer.exitcode, consumer.exitcode) == (0, 0)


def test_one_sentinel_per_consumer(start_method):
    ctx = get_context(start_method)
    items, results = ctx.Queue(), ctx.Queue()
    consumers = [ctx.Process(target=queues.consume, args=(items, results, 10)) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    try:
        for number in range(200):
            items.put(number)
        for _ in consumers:
            items.put(queues.STOP)
        reports = [results.get(timeout=20) for _ in consumers]
    finally:
        stop(consumers, grace=10)
    assert sum(count for count, _ in reports) == 200
    assert sum(total for _, total in reports) == sum(range(200))


def test_a_consumer_gives_up_when_nothing_comes(start_method):
    ctx = get_context(start_method)
    items, results = ctx.Queue(), ctx.Queue()
    consumer = ctx.Process(target=queues.consume, args=(items, results, 0.3))
    consumer.start()
    stop(consumer, grace=10)
    assert consumer.exitcode == 1  # queue.Empty ended it: no hang


def _wait_for_one(ctx, waiter, delay=0.3):
    items, report, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
    child = ctx.Process(target=waiter, args=(items, report, ready, 10))
    child.start()
    try:
        assert ready.wait(timeout=20)
        time.sleep(delay)
        items.put(time.perf_counter())
        return report.get(timeout=20)
    finally:
        stop(child, grace=10)


def test_polling_burns_cpu_and_blocking_does_not(start_method):
    ctx = get_context(start_method)
    blocking = _wait_for_one(ctx, queues.wait_blocking)
    polling = _wait_for_one(ctx, queues.wait_polling)
    for report in (blocking, polling):
        assert 0 <= report["got_after_put_s"] < report["waited_s"]
    assert blocking["cpu_s"] < 0.2 * blocking["waited_s"]
    assert polling["cpu_s"] > 10 * blocking["cpu_s"]  # a ratio from one run: the machine may be busy


def test_join_before_drain_times_out_and_draining_fixes_it(start_method):
    ctx = get_context(start_method)
    items = ctx.Queue()
    putter = ctx.Process(target=queues.put_big_item, args=(items, 1_000_000))
    putter.start()
    try:
        putter.join(timeout=0.5)
        assert putter.is_alive()  # stuck: its feeder thread waits for a reader
        assert len(items.get(timeout=20)) == 1_000_000
        putter.join(timeout=20)
    finally:
        stop(putter, grace=10)
    assert putter.exitcode == 0


def test_joinable_queue_counts_task_done(start_method):
    ctx = get_context(start_method)
    tasks, results = ctx.JoinableQueue(), ctx.Queue()
    for number in range(1, 21):
        tasks.put(number)
    all_done = threading.Thread(target=tasks.join, daemon=True)
    all_done.start()
    all_done.join(timeout=0.3)
    assert all_done.is_alive()  # nobody has called task_done yet
    workers = [ctx.Process(target=queues.square_tasks, args=(tasks, results, 10)) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        all_done.join(timeout=20)
        assert not all_done.is_alive()
        assert sorted(results.get(timeout=20) for _ in range(20)) == [(n, n * n) for n in range(1, 21)]
        for _ in workers:
            tasks.put(queues.STOP)
    finally:
        stop(workers, grace=10)
    assert [w.exitcode for w in workers] == [0, 0]


def test_a_failing_task_is_still_marked_done(start_method):
    ctx = get_context(start_method)
    tasks, results = ctx.JoinableQueue(), ctx.Queue()
    worker = ctx.Process(target=queues.square_tasks, args=(tasks, results, 10))
    worker.start()
    try:
        tasks.put("not a number")  # the worker dies of a TypeError, after task_done()
        worker.join(timeout=20)
        all_done = threading.Thread(target=tasks.join, daemon=True)
        all_done.start()
        all_done.join(timeout=5)
        assert not all_done.is_alive()
    finally:
        stop(worker, grace=10)
    assert worker.exitcode == 1


# --- the exercise check ----------------------------------------------------------------

RIGHT = """
import queue
STOP = None
def consume(items, timeout):
    received = []
    while True:
        try:
            item = items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("the producer went quiet") from None
        if item is STOP:
            return received
        received.append(item)
"""

NO_TIMEOUT = """
STOP = None
def consume(items, timeout):
    received = []
    while (item := items.get()) is not STOP:
        received.append(item)
    return received
"""

SPINS = """
import queue, time
STOP = None
def consume(items, timeout):
    received, last = [], time.monotonic()
    while True:
        try:
            item = items.get(block=False)
        except queue.Empty:
            if time.monotonic() - last > timeout:
                raise TimeoutError("quiet")
            continue
        last = time.monotonic()
        if item is STOP:
            return received
        received.append(item)
"""


@pytest.fixture
def learner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(text):
        (tmp_path / "exercise_queue_test.py").write_text(text)
        return "exercise_queue_test"

    return write


@pytest.mark.timeout(120)
def test_the_check_passes_a_right_consumer(learner, start_method, capsys):
    assert queues.check_consumer(learner(RIGHT), start_method) is True
    assert capsys.readouterr().out.startswith("Right: ")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "answer, verdict",
    [(NO_TIMEOUT, "Wrong: the producer died"), (SPINS, "Wrong: while it waited")],
    ids=["no-timeout", "spins"],
)
def test_the_check_says_what_is_wrong(answer, verdict, learner, capsys):
    """Under spawn, as in the lesson (tests/test_exercises.py runs more wrong answers)."""
    assert queues.check_consumer(learner(answer), "spawn") is False
    assert capsys.readouterr().out.startswith(verdict)
