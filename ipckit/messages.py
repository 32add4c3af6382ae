"""Message passing: Queue and Pipe, sentinels to stop, poll and wait instead of spinning.

Public functions start their children, wait with timeouts, and return plain
data for a notebook to print. Underscored functions run in the children.
"""
import os
import queue
import threading
import time
from multiprocessing import BufferTooShort, parent_process
from multiprocessing.connection import wait

import numpy as np

from .context import get_context
from .checks import check_count, check_timeout
from .run import DEFAULT_TIMEOUT, WorkerDied, receive, run_many, stop_process

STOP = None  # the sentinel: "no more items"


# --- Queue ----------------------------------------------------------------------------


def _produce(items, count):
    for number in range(count):
        items.put(number)
    items.put(STOP)
    return count


def _consume(items, timeout):
    received, total = 0, 0
    while True:
        item = items.get(timeout=timeout)  # blocks without using the CPU; raises queue.Empty after timeout
        if item is STOP:
            return {"received": received, "total": total}
        received += 1
        total += item


def queue_demo(count=1_000, start_method=None, timeout=DEFAULT_TIMEOUT):
    """A producer child puts ``count`` numbers and a STOP sentinel; a consumer child sums them."""
    count = check_count(count, "count", minimum=0)
    ctx = get_context(start_method)
    items = ctx.Queue()
    try:
        sent, summary = run_many(
            [(_produce, (items, count)), (_consume, (items, timeout))], start_method=start_method, timeout=timeout
        )
    finally:
        items.close()
        items.join_thread()
    return {"sent": sent, **summary, "expected_total": count * (count - 1) // 2}


def _wait_for_one_item(items, ready, mode, give_up_after):
    ready.set()  # the parent starts its delay only now, so start-up time is not counted
    # thread_time counts this thread only (numpy's BLAS threads may spin for a moment at start-up)
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    if mode == "blocking":
        item = items.get(timeout=give_up_after)
    else:  # the seed's loop, bounded here so the demo cannot run for ever: do not copy it
        while True:
            try:
                item = items.get(block=False)
                break
            except queue.Empty:
                if time.perf_counter() - wall_start > give_up_after:
                    raise TimeoutError("no item arrived") from None
    return {
        "item": item,
        "cpu_seconds": time.thread_time() - cpu_start,
        "wall_seconds": time.perf_counter() - wall_start,
    }


def _put_when_ready(items, ready, delay, timeout):
    if ready.wait(timeout):
        time.sleep(delay)
        items.put("the item")


def waiting_cost(mode="blocking", delay=0.5, start_method=None, timeout=DEFAULT_TIMEOUT):
    """How much CPU a consumer burns while it waits ``delay`` seconds for an item.

    ``mode="blocking"`` uses ``get(timeout=...)``; ``mode="polling"`` is the
    seed's ``get(block=False)`` loop. The CPU time is measured in the child.
    """
    if mode not in ("blocking", "polling"):
        raise ValueError(f"mode must be 'blocking' or 'polling', not {mode!r}")
    check_timeout(delay, "delay")
    check_timeout(timeout)
    ctx = get_context(start_method)
    items, ready = ctx.Queue(), ctx.Event()
    deliverer = threading.Thread(target=_put_when_ready, args=(items, ready, delay, timeout), daemon=True)
    try:
        deliverer.start()
        (report,) = run_many([(_wait_for_one_item, (items, ready, mode, delay + timeout))], start_method, timeout + delay)
    finally:
        ready.set()  # releases the deliverer if the child never started
        deliverer.join(timeout + delay)
        items.close()
        items.join_thread()
    report.update(mode=mode, cpu_share=report["cpu_seconds"] / report["wall_seconds"])
    return report


def _put_big_item(items, nbytes):
    items.put(b"x" * nbytes)  # a feeder thread writes it to a pipe; the child cannot exit until it is read


def join_before_drain_demo(nbytes=1_000_000, join_timeout=1.0, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Reproduce the join-before-drain deadlock with a timeout, then fix it by draining first.

    A child that has put more than a pipe holds (about 64 KiB) on a Queue cannot
    exit until someone reads it, so ``join()`` first waits for ever. Here the
    join has a timeout, so the deadlock is reported instead of hanging.
    """
    nbytes = check_count(nbytes, "nbytes")
    check_timeout(join_timeout, "join_timeout")
    ctx = get_context(start_method)
    items = ctx.Queue()
    child = ctx.Process(target=_put_big_item, args=(items, nbytes), name="big-putter")
    try:
        child.start()
        child.join(join_timeout)  # the mistake: join before reading
        stuck = child.is_alive()
        item = items.get(timeout=timeout)  # the fix: drain first ...
        child.join(timeout)  # ... then join
        return {
            f"join({join_timeout}) before draining timed out": stuck,
            "bytes received after draining": len(item),
            "exit code after draining": child.exitcode,
        }
    finally:
        stop_process(child)
        items.close()
        items.join_thread()


# --- Pipe -----------------------------------------------------------------------------

OPERATIONS = {
    "square": lambda x: x * x,
    "upper": lambda text: text.upper(),
    "sum": sum,
}


def _serve_requests(conn):
    """Answer (operation, argument) requests until ("stop", None), the parent closes its end, or dies."""
    answered = 0
    parent = parent_process()  # under fork this child also holds the parent's end: EOF alone may never come
    with conn:
        while True:
            if conn not in wait([conn, parent.sentinel]):
                return answered  # the parent died
            try:
                operation, argument = conn.recv()
            except EOFError:
                return answered
            if operation == "stop":
                return answered
            try:
                conn.send(("ok", OPERATIONS[operation](argument)))
            except Exception as exc:  # a bad request gets an error reply, the server keeps going
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            answered += 1


class PipeServer:
    """A child process answering requests over a two-way Pipe; use it in a ``with`` block."""

    def __init__(self, start_method=None, timeout=10.0):
        check_timeout(timeout)
        self.timeout = timeout
        ctx = get_context(start_method)
        self.conn, child_end = ctx.Pipe()  # duplex: both ends send and receive
        self.process = ctx.Process(target=_serve_requests, args=(child_end,), name="pipe-server")
        try:
            self.process.start()
        finally:
            child_end.close()

    def ask(self, operation, argument):
        """Send one request and wait (with the timeout, watching the child) for its reply."""
        if self.conn.closed:
            raise ValueError("this PipeServer is closed; create a new one to send more requests")
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}")
        try:
            self.conn.send((operation, argument))
        except (BrokenPipeError, ConnectionResetError):  # the server is gone
            self.process.join(1.0)
            raise WorkerDied(self.process.name, self.process.exitcode) from None
        status, value = receive(self.conn, self.process, self.timeout)
        return value if status == "ok" else f"error: {value}"

    def close(self):
        if not self.conn.closed:
            try:
                self.conn.send(("stop", None))
            except OSError:
                pass  # the child is already gone
            self.conn.close()
        stop_process(self.process)
        return self.process.exitcode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _send_after(conn, ready, delay, value):
    ready.set()  # the parent starts its clock now, so start-up time is not counted
    time.sleep(delay)
    conn.send(value)
    conn.close()


def poll_demo(delay=0.3, start_method=None, timeout=10.0):
    """``poll(0)`` answers at once; ``poll(timeout)`` waits up to timeout for data to arrive."""
    check_timeout(delay, "delay")
    ctx = get_context(start_method)
    receiver, sender = ctx.Pipe(duplex=False)
    ready = ctx.Event()
    child = ctx.Process(target=_send_after, args=(sender, ready, delay, "hello"))
    try:
        child.start()
        sender.close()
        if not ready.wait(timeout):
            raise TimeoutError(f"the child did not start within {timeout} s")
        start = time.perf_counter()
        at_once = receiver.poll(0)
        after_wait = receiver.poll(timeout)
        waited = time.perf_counter() - start
        if not after_wait:
            raise TimeoutError(f"no message within {timeout} s")
        return {"poll(0)": at_once, f"poll({timeout})": after_wait, "message": receiver.recv(), "waited_s": waited}
    finally:
        receiver.close()
        sender.close()
        stop_process(child)


def _send_raw(conn, count):
    values = np.arange(count, dtype=np.float64)
    conn.send_bytes(values)  # the raw bytes of the array, no pickle
    conn.close()


def recv_into_demo(count=100_000, buffer_count=None, start_method=None, timeout=10.0):
    """A child sends an array's raw bytes; the parent receives them into a preallocated array.

    With ``buffer_count`` smaller than ``count`` the buffer is too short:
    ``recv_bytes_into`` raises ``BufferTooShort`` (the message is in the exception).
    """
    count = check_count(count, "count")
    buffer_count = count if buffer_count is None else check_count(buffer_count, "buffer_count")
    ctx = get_context(start_method)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_send_raw, args=(sender, count))
    try:
        child.start()
        sender.close()
        out = np.zeros(buffer_count, dtype=np.float64)
        if not wait([receiver], timeout):
            raise TimeoutError(f"nothing arrived within {timeout} s")
        try:
            nbytes = receiver.recv_bytes_into(out)
        except BufferTooShort as exc:
            return {"error": f"BufferTooShort: needed {len(exc.args[0])} bytes, had {out.nbytes}"}
        return {"bytes": nbytes, "equal": bool(np.array_equal(out, np.arange(count, dtype=np.float64)))}
    finally:
        receiver.close()
        sender.close()
        stop_process(child)


def _reply_after(conn, start_line, delay, value):
    start_line.wait(30)  # all start counting together, once every worker is running
    time.sleep(delay)
    conn.send(value)


def _die_after(conn, start_line, delay, exitcode):
    start_line.wait(30)
    time.sleep(delay)
    os._exit(exitcode)  # dies without a word and without closing anything politely


def wait_demo(start_method=None, timeout=10.0):
    """Wait on three pipes and three sentinels at once; report who replied and who died.

    Worker "a" replies after 0.2 s, "b" dies with exit code 3 after 0.5 s, "c"
    replies after 0.8 s. The parent never blocks on one pipe while another child
    dies: ``multiprocessing.connection.wait`` returns whichever is ready first.
    """
    check_timeout(timeout)
    ctx = get_context(start_method)
    plan = {"a": (_reply_after, 0.2, "result of a"), "b": (_die_after, 0.5, 3), "c": (_reply_after, 0.8, "result of c")}
    start_line = ctx.Barrier(len(plan) + 1)  # the workers and this process
    workers = {}
    try:
        for name, (func, delay, value) in plan.items():
            receiver, sender = ctx.Pipe(duplex=False)
            process = ctx.Process(target=func, args=(sender, start_line, delay, value), name=name)
            workers[name] = (process, receiver)
            process.start()
            sender.close()
        start_line.wait(timeout)  # raises BrokenBarrierError if a worker never starts
        start, events = time.perf_counter(), []
        pending = dict(workers)
        while pending:
            handles = {h: name for name, (p, r) in pending.items() for h in (r, p.sentinel)}
            ready = wait(list(handles), max(0.0, timeout - (time.perf_counter() - start)))
            if not ready:
                raise TimeoutError(f"{', '.join(pending)} neither replied nor died within {timeout} s")
            for name in sorted({handles[h] for h in ready}):
                process, receiver = pending.pop(name)
                try:
                    event = f"replied {receiver.recv()!r}"
                except EOFError:  # the sending end closed without a message: the child is gone
                    process.join(1.0)
                    event = f"died with exit code {process.exitcode}"
                events.append({"worker": name, "event": event, "after_s": time.perf_counter() - start})
        return events
    finally:
        for process, receiver in workers.values():
            receiver.close()
            stop_process(process)
