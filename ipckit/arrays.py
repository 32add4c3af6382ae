"""Large numpy arrays between processes: the transports' contract, and the calls that try it with a child.

The ten transports live in :mod:`ipckit.transports` (``TRANSPORTS``, the
``open() -> link``, ``link.sender.send`` / ``link.receiver.recv`` interface),
packing in :mod:`ipckit.packing`, dtypes and fingerprints in
:mod:`ipckit.dtypes`, timing in :mod:`ipckit.bench`; their public names are
importable from here too. This module adds :func:`echo` / :func:`echo_many`
(arrays to a child by one transport and back) and :func:`stream_check` (the
contract below, checked streaming).

The contract, the same for every transport
------------------------------------------
* **What recv() returns stays intact until the receiver's next recv()** (or
  its ``release()``), whatever the sender does meanwhile: a sender may keep
  sending without waiting for the reader, as real programs do. Most
  transports return a new array that is the caller's for ever. The in-place
  one, ``shared_memory`` (``in_place = True``), returns the array where it
  lies, in one of two slots it uses in turn: the receiver tells the sender a
  slot is free only when the caller is done with its array (at the next
  ``recv()`` or ``release()``), never inside ``recv()``, and the sender waits
  for that before writing there again. Copy such an array to keep it longer,
  or open the link with ``hold=N`` to keep the last N (N + 1 slots).
  ``fork_global`` hands over the array the child inherited: its own for ever.
* **send() takes the values the array has at the call**: the sender may change
  or refill its array as soon as ``send()`` returns. (A ``Queue`` pickles in a
  feeder thread later, so the ``queue`` transport pickles in ``send()``
  itself.) ``fork_global`` is the exception: the child sees the array as it is
  at the fork, so change nothing between ``send()`` and starting the child.
* **The dtype comes back equal**, byte order included: the pickling
  transports use pickle protocol 5 (below it, numpy turns ``'>i4'`` into
  ``'<i4'``, and ``Connection.send`` and ``Queue`` use the default protocol,
  4 before Python 3.14).
* **No wait is longer than its timeout**, and a peer that dies is noticed at
  once (:mod:`ipckit.watch`).
"""
import time

import numpy as np

from .checks import check_count, check_timeout
from .context import resolve_start_method
from .dtypes import TYPECODES, Fingerprint, check_numeric_array, fingerprint, to_rawarray, typecode_for
from .packing import Layout, PackedEntry, layout_of, pack, unpack
from .run import Child
from .transports import TRANSPORTS, Link, Transport, get_transport
from .watch import DEFAULT_TIMEOUT

__all__ = [
    "TRANSPORTS",
    "TYPECODES",
    "Fingerprint",
    "Layout",
    "Link",
    "PackedEntry",
    "Transport",
    "echo",
    "echo_many",
    "fingerprint",
    "get_transport",
    "layout_of",
    "pack",
    "stream_check",
    "stream_frame",
    "stream_pattern",
    "to_rawarray",
    "typecode_for",
    "unpack",
]


# --- echo ----------------------------------------------------------------------------------------


def _echo_worker(receiver, sender, count, timeout):
    """Child: receive ``count`` arrays and send each straight back."""
    try:
        for _ in range(count):
            sender.send(receiver.recv(timeout), timeout)
        return count
    finally:
        receiver.close()
        sender.close()


def _checked(arrays, transport, start_method, timeout):
    """Check the arguments of a call that moves ``arrays`` by ``transport``, in the caller, before any child starts.

    Returns ``(transport, arrays, start method, capacity)``, capacity being the largest array's bytes.
    """
    transport = get_transport(transport)
    arrays = [check_numeric_array(a) for a in arrays]
    method = resolve_start_method(start_method)
    check_timeout(timeout)
    capacity = max((a.nbytes for a in arrays), default=0)
    transport.check_available(capacity, method)
    return transport, arrays, method, capacity


def echo_many(arrays, transport, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Send each array to one child by ``transport`` and back by the same; return what came back.

    One child serves the whole list, in order. ``fork_global`` moves data only
    from parent to child (a child cannot write into its parent's memory), so
    its arrays come back through ``pipe_bytes``.
    """
    if isinstance(arrays, np.ndarray):
        raise TypeError("echo_many takes a list of arrays; for one array use echo(array, ...)")
    transport, arrays, method, capacity = _checked(list(arrays), transport, start_method, timeout)
    way_back = TRANSPORTS["pipe_bytes"] if transport.send_before_start else transport
    results = []
    with transport.open(capacity, method) as there, way_back.open(capacity, method) as back:
        if transport.send_before_start:
            for array in arrays:
                there.sender.send(array, timeout)
        child_args = (there.receiver, back.sender, len(arrays), timeout)
        with Child(_echo_worker, child_args, start_method=method, name=f"echo:{transport.name}") as child:
            there.receiver.close()  # the child has its own copies of these two ends
            back.sender.close()
            for array in arrays:
                if not transport.send_before_start:
                    there.sender.send(array, timeout, peer=child.process)
                result = back.receiver.recv(timeout, peer=child.process)
                results.append(result.copy() if way_back.in_place else result)  # the next send reuses it
            child.result(timeout)
    return results


def echo(array, transport, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Send ``array`` to a child process by ``transport`` and back by the same; return what came back.

    The result equals ``array`` in shape, dtype and values (it is C-ordered
    unless a transport keeps the order). Bad input raises here, before any
    process starts: TypeError for a non-array or an object/str dtype,
    ValueError for an unknown transport or ``fork_global`` under spawn or
    forkserver, :class:`~ipckit.shm.NotEnoughSharedMemory` when /dev/shm is too small.
    """
    return echo_many([array], transport, start_method, timeout)[0]


# --- streaming: the sender does not wait, the reader holds each array ---------------------------


def stream_pattern(shape):
    """The base of every frame of a test stream: uint8 values 0..250 repeating, of ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    return (np.arange(size) % 251).astype(np.uint8).reshape(shape)


def stream_frame(pattern, index, out=None):
    """Frame ``index`` of a test stream: every byte differs from the same byte of the frame before and after.

    So a frame that was partly overwritten by the next one never passes for a whole one.
    """
    return np.add(pattern, np.uint8(index % 256), out=out)


def _hold_and_check(receiver, count, shape, hold, timeout):
    """Child: receive ``count`` frames; hold each ``hold`` seconds (as a reader at work would), then compare it
    bit for bit."""
    pattern = stream_pattern(shape)
    expected = np.empty_like(pattern)
    intact = []
    try:
        for index in range(count):
            frame = receiver.recv(timeout)
            time.sleep(hold)  # meanwhile the sender keeps sending
            whole = frame.dtype == np.uint8 and np.array_equal(frame, stream_frame(pattern, index, expected))
            intact.append(bool(whole))
            del frame
        return intact
    finally:
        receiver.close()


def stream_check(transport, count=100, shape=(240, 320), hold=0.001, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Stream ``count`` distinct uint8 frames from this process to a child that holds each before checking it.

    The sender does what real programs do: it sends frame after frame from one
    reused buffer, without waiting for the reader. The reader holds each frame
    ``hold`` seconds, then compares it bit for bit with the frame that was sent.
    Returns ``{"transport", "start_method", "frames", "intact", "torn"}`` where
    ``torn`` lists the indexes of frames that did not arrive whole.
    """
    transport = get_transport(transport)
    method = resolve_start_method(start_method)
    count = check_count(count, "count")
    check_timeout(timeout)
    if not (isinstance(hold, (int, float)) and 0 <= hold < timeout):
        raise ValueError(f"hold must be a number of seconds from 0 to less than the timeout, not {hold!r}")
    shape = tuple(check_count(n, "shape entry", minimum=0) for n in shape)
    pattern = stream_pattern(shape)
    transport.check_available(pattern.nbytes, method)
    with transport.open(pattern.nbytes, method) as link:
        if transport.send_before_start:  # fork_global: the frames travel by the fork, each its own array
            for index in range(count):
                link.sender.send(stream_frame(pattern, index), timeout)
        args = (link.receiver, count, shape, hold, timeout)
        with Child(_hold_and_check, args, start_method=method, name=f"hold-and-check:{transport.name}") as child:
            link.receiver.close()
            if not transport.send_before_start:
                frame = np.empty_like(pattern)
                for index in range(count):  # one buffer, refilled for every frame
                    link.sender.send(stream_frame(pattern, index, frame), timeout, peer=child.process)
            intact = child.result(timeout)
    return {
        "transport": transport.name,
        "start_method": method,
        "frames": count,
        "intact": sum(intact),
        "torn": [index for index, whole in enumerate(intact) if not whole],
    }
