"""Watching children: wait on a pipe and a child together, move a whole buffer with a deadline, stop children.

Every wait of the library goes through here, so that none can hang:

- :func:`wait_for` returns once a pipe has something to read, and watches the
  child at the other end (its ``Process.sentinel``) at the same time, as
  ``multiprocessing.connection.wait`` does: a child that dies is noticed at
  once (:class:`~ipckit.errors.WorkerDied`), not when the time is up.
  :func:`receive` is :func:`wait_for`, then ``conn.recv()``.
- :func:`write_all` and :func:`read_into` move a whole buffer through a pipe,
  watching the child too. With a ``timeout`` the write never blocks for
  longer: the pipe is non-blocking while it writes, and it waits for room.
- :func:`stop` ends children: each may leave by itself within ``grace``
  seconds, then ``terminate()``, then ``kill()``.
- :class:`Watch` keeps one selector over many pipes and sentinels, for a loop
  that waits again and again (``connection.wait`` builds one per call).

One meaning of ``timeout`` everywhere: the longest, in seconds, that *one
operation* may wait: one message, one buffer, one result. It is never the
length of a child's life. A child whose wait timed out is stopped by whoever
started it (:mod:`ipckit.run`, the pipeline), before the error reaches the caller.
"""
import os
import select
import selectors
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from .errors import WorkerDied, WorkerTimeout

DEFAULT_TIMEOUT = 60.0  # seconds one operation may wait
STOP_GRACE = 1.0  # seconds a child gets to leave by itself, and again to obey terminate()


def _died(process):
    """The :class:`WorkerDied` for ``process``, which has ended (or is about to: give it a moment)."""
    process.join(1.0)
    return WorkerDied(process.name, process.exitcode)


def _timed_out(process, timeout, what):
    if process is None:
        return TimeoutError(f"no {what} within {timeout} s")
    return WorkerTimeout(process.name, timeout, waiting_for=what)


def wait_for(conn, process=None, timeout=DEFAULT_TIMEOUT, what="message"):
    """Return once ``conn`` has something to read (data, or the end of the pipe), within ``timeout`` seconds.

    ``process``, the child at the other end, is watched too: :class:`WorkerDied`
    as soon as it has ended leaving nothing to read. When the time is up:
    :class:`WorkerTimeout` (plain ``TimeoutError`` without a process), naming ``what``.
    """
    handles = [conn] if process is None else [conn, process.sentinel]
    ready = wait(handles, timeout)
    if not ready:
        raise _timed_out(process, timeout, what)
    if conn in ready or wait([conn], 0):  # a child may send, then exit: its message still counts
        return
    raise _died(process)


def receive(conn, process=None, timeout=DEFAULT_TIMEOUT, what="message"):
    """The next message on ``conn`` (``conn.recv()``), waited for as :func:`wait_for` does.

    The end of the pipe means the sender has gone: :class:`WorkerDied` when
    ``process`` is given, else ``EOFError``.
    """
    if conn.closed:
        raise ValueError("this connection is closed; open a new Pipe before sending or receiving")
    wait_for(conn, process, timeout, what)
    try:
        return conn.recv()
    except (EOFError, ConnectionResetError):  # closed, or reset by a process that died
        if process is None:
            raise EOFError(f"the other end closed before sending the {what}") from None
        raise _died(process) from None


HAS_POSIX_PIPES = hasattr(select, "poll") and hasattr(os, "readv")
"""Waiting on a raw pipe descriptor with a deadline (``select.poll``) and reading into memory (``os.readv``)."""


def require_posix_pipes(what):
    """Raise a clear OSError, naming the platform and a way out, where raw pipe descriptors cannot be waited on."""
    if not HAS_POSIX_PIPES:
        raise OSError(
            f"{what} waits on raw pipe descriptors with select.poll and reads them with os.readv, which "
            f"{sys.platform} does not have (POSIX only). On Windows, run the kit in WSL2."
        )


def _poller(fd, event, process):
    require_posix_pipes("a pipe read or written with a deadline")
    poller = select.poll()
    poller.register(fd, event)
    if process is not None:
        poller.register(process.sentinel, select.POLLIN)
    return poller


def _ready(poller, fd, deadline, process):
    """Wait until ``fd`` is ready (True) or the deadline has passed (False); WorkerDied if ``process`` ends first."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    ready = {handle for handle, _ in poller.poll(remaining * 1000)}
    if fd in ready:  # ready, or closed at the other end: the read or write says which
        return True
    if ready:  # only the sentinel
        raise _died(process)
    return False


def write_all(conn, data, timeout=None, process=None, what="data"):
    """Write every byte of ``data`` (bytes-like, contiguous) to the pipe ``conn`` (a Connection or a descriptor).

    Without ``timeout`` it blocks until done. With one it never waits longer
    for the reader to make room, watching ``process`` meanwhile. A reader
    that has gone gives ``BrokenPipeError``. Nothing frames the bytes: the
    reader must know how many to expect.
    """
    fd = conn if isinstance(conn, int) else conn.fileno()
    if timeout is None:
        written = os.write(fd, data)  # one write() moves it all, unless a signal interrupts it
        view = memoryview(data).cast("B")[written:]
        while view:
            view = view[os.write(fd, view):]
        return
    view = memoryview(data).cast("B")
    deadline, total = time.monotonic() + timeout, len(view)
    was_blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)  # a write takes what fits and returns, so the deadline holds
    try:
        poller = _poller(fd, select.POLLOUT, process)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                if not _ready(poller, fd, deadline, process):
                    raise _timed_out(process, timeout, f"room for {what} ({total - len(view):,} of {total:,} "
                                                       "bytes written)") from None
    finally:
        if was_blocking:
            os.set_blocking(fd, True)


def read_into(conn, target, timeout=DEFAULT_TIMEOUT, process=None, what="data"):
    """Fill ``target`` (writable, contiguous) with exactly its size in bytes from the pipe ``conn``, within ``timeout``.

    ``os.readv`` puts the bytes straight into ``target``'s memory: no
    temporary buffer (``Connection.recv_bytes_into`` reads into one first).
    The end of the pipe before the last byte: :class:`WorkerDied` with
    ``process``, else ``EOFError``.
    """
    fd = conn if isinstance(conn, int) else conn.fileno()
    view, received = memoryview(target).cast("B"), 0
    deadline = time.monotonic() + timeout
    poller = _poller(fd, select.POLLIN, process)
    while received < len(view):
        if not _ready(poller, fd, deadline, process):
            raise _timed_out(process, timeout, f"{what} (only {received:,} of {len(view):,} bytes came)")
        try:
            count = os.readv(fd, [view[received:]])
        except BlockingIOError:
            continue
        if count == 0:
            if process is not None:
                raise _died(process)
            raise EOFError(f"the other end closed after {received:,} of {len(view):,} bytes of {what}")
        received += count


TERMINATE_GRACE = 1.0  # seconds a terminated child gets to go before it is killed


def _join_all(processes, seconds):
    deadline = time.monotonic() + seconds
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))


def stop(processes, grace=STOP_GRACE, now=False):
    """End ``processes`` (one, or several): let them leave by themselves within ``grace`` seconds in all,
    terminate those still alive, and kill those that outlive another ``grace`` (at least a second).

    ``now=True`` terminates at once, for children whose work nobody waits for
    any more (another failed, or time ran out). Processes never started are
    passed over; safe on every path, and twice.
    """
    if isinstance(processes, BaseProcess):
        processes = [processes]
    started = [process for process in processes if process.pid is not None]
    if not now:
        _join_all(started, grace)
    alive = [process for process in started if process.is_alive()]
    for process in alive:
        process.terminate()
    _join_all(alive, max(grace, TERMINATE_GRACE))
    for process in alive:
        if process.is_alive():
            process.kill()
            process.join(max(grace, TERMINATE_GRACE))


class Watch:
    """One selector kept over many pipes and sentinels, for a loop that waits again and again.

    ``multiprocessing.connection.wait`` builds a new selector on every call; a
    loop that waits once per message keeps this one and registers each handle
    once. Handles are Connections, sentinels or descriptors, as for ``wait``.
    """

    def __init__(self, handles=()):
        self._selector = selectors.DefaultSelector()
        for handle in handles:
            self.add(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _events(self, handle):
        try:
            return self._selector.get_key(handle).events
        except KeyError:
            return 0

    def _set(self, handle, events):
        old = self._events(handle)
        if events == old:
            return
        if not old:
            self._selector.register(handle, events)
        elif not events:
            self._selector.unregister(handle)
        else:
            self._selector.modify(handle, events)

    def add(self, handle):
        """Wake when ``handle`` has something to read (a sentinel: when its process has ended)."""
        self._set(handle, self._events(handle) | selectors.EVENT_READ)

    def forget(self, handle):
        """Stop watching ``handle`` (before closing it)."""
        self._set(handle, 0)

    def want_write(self, handle, wanted=True):
        """Also wake when ``handle`` has room for writing, while ``wanted``."""
        events = self._events(handle)
        self._set(handle, events | selectors.EVENT_WRITE if wanted else events & ~selectors.EVENT_WRITE)

    def ready(self, timeout=None):
        """The handles ready now, waiting at most ``timeout`` seconds (None: until one is)."""
        return [key.fileobj for key, _ in self._selector.select(timeout)]

    def close(self):
        self._selector.close()
