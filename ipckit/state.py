"""Shared state between processes: globals (not shared), Value, Array, Event, Manager.

Each public function here starts its own children, waits for them with a
timeout, and returns plain data (dicts, lists, numbers) that a notebook can
print. The functions whose names start with an underscore run in the children.
"""
import secrets
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.managers import BaseManager, DictProxy

import numpy as np
import psutil

from .context import get_context, resolve_start_method
from .checks import check_count, check_timeout
from .run import DEFAULT_TIMEOUT, run_in_child, run_many

MiB = 2**20


# --- Globals are not shared ---------------------------------------------------------

NOTES = []  # a module-level list: every process has its own copy


def _append_to_notes(note):
    NOTES.append(note)
    return list(NOTES)


def globals_demo(start_method=None, timeout=DEFAULT_TIMEOUT):
    """The parent writes a global, a child appends to it; the parent's copy does not change.

    Under fork the child starts with a copy of the parent's list; under spawn and
    forkserver it starts from a fresh import of this module, so the list is empty.
    """
    method = resolve_start_method(start_method)
    NOTES[:] = ["written by the parent"]
    try:
        child_sees = run_in_child(_append_to_notes, "appended by the child", start_method=method, timeout=timeout)
        return {"start_method": method, "child_sees": child_sees, "parent_sees": list(NOTES)}
    finally:
        NOTES.clear()


BIG_GLOBAL = None  # set by big_global_demo in the parent; inherited only by fork


def _private_bytes():
    """Memory that belongs to this process alone (pages not shared with any other)."""
    return psutil.Process().memory_full_info().uss


def _read_then_write_big_global():
    if BIG_GLOBAL is None:
        return {"child_has_global": False}
    before = _private_bytes()
    checksum = float(BIG_GLOBAL.sum())
    after_read = _private_bytes()
    BIG_GLOBAL[:] += 1.0  # writing touches every page, so the kernel copies each one
    after_write = _private_bytes()
    return {
        "child_has_global": True,
        "checksum": checksum,
        "copied_by_reading_mib": max(0.0, (after_read - before) / MiB),
        "copied_by_writing_mib": max(0.0, (after_write - before) / MiB),
    }


def big_global_demo(mib=64, start_method=None, timeout=DEFAULT_TIMEOUT):
    """A child reads, then writes, a big global array; report how much memory it had to copy.

    Under fork the child reads the parent's pages in place (copy-on-write): only
    writing copies them. Under spawn and forkserver the global is simply absent.
    """
    global BIG_GLOBAL
    mib = check_count(mib, "mib")
    method = resolve_start_method(start_method)
    BIG_GLOBAL = np.ones(mib * MiB // 8)
    try:
        report = run_in_child(_read_then_write_big_global, start_method=method, timeout=timeout)
        report.update(start_method=method, mib=mib, parent_checksum=float(BIG_GLOBAL.sum()))
        return report
    finally:
        BIG_GLOBAL = None


# --- Value and Array ------------------------------------------------------------------


def double_all(value, array):
    """Child-side worker: double a shared ``Value`` and every item of a shared ``Array`` in place."""
    with value.get_lock():
        value.value *= 2
    with array.get_lock():
        for i in range(len(array)):
            array[i] *= 2
    return "doubled"


def _add_many(counter, start_together, increments, use_lock, timeout):
    start_together.wait(timeout)  # all children count at the same time, or nothing races
    if use_lock:
        for _ in range(increments):
            with counter.get_lock():
                counter.value += 1
    else:
        for _ in range(increments):
            counter.value += 1  # a read, then a write: two steps another process can split


def count_together(processes=4, increments=10_000, use_lock=True, start_method=None, timeout=DEFAULT_TIMEOUT):
    """``processes`` children each add 1 to a shared ``Value`` ``increments`` times; return the total."""
    processes = check_count(processes, "processes")
    increments = check_count(increments, "increments", minimum=0)
    check_timeout(timeout)
    ctx = get_context(start_method)
    counter = ctx.Value("q", 0)
    start_together = ctx.Barrier(processes)
    calls = [(_add_many, (counter, start_together, increments, bool(use_lock), timeout))] * processes
    run_many(calls, start_method=start_method, timeout=timeout)
    return counter.value


def lost_updates_demo(processes=4, increments=10_000, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Count with and without ``get_lock()``; without it some increments are lost."""
    expected = check_count(processes, "processes") * check_count(increments, "increments", minimum=0)
    without_lock = count_together(processes, increments, False, start_method, timeout)
    with_lock = count_together(processes, increments, True, start_method, timeout)
    return {"expected": expected, "without_lock": without_lock, "with_lock": with_lock}


def _fill_my_part(shared, part, parts):
    values = np.frombuffer(shared.get_obj(), dtype=np.float64)  # a numpy view, no copy
    start, stop = part * len(values) // parts, (part + 1) * len(values) // parts
    values[start:stop] = part  # disjoint slices: no lock needed
    return stop - start


def shared_array_demo(processes=4, length=12, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Each child writes its number into its own slice of one shared ``Array('d', length)``."""
    processes = check_count(processes, "processes")
    length = check_count(length, "length")
    ctx = get_context(start_method)
    shared = ctx.Array("d", length)
    calls = [(_fill_my_part, (shared, part, processes)) for part in range(processes)]
    written = run_many(calls, start_method=start_method, timeout=timeout)
    return {"values": list(shared[:]), "written_per_child": written}


def _work_until_stopped(started, stop, rounds, timeout):
    started.wait(timeout)  # the parent's clock starts once every worker is running
    while not stop.is_set():
        sum(range(2_000))  # one small unit of work
        with rounds.get_lock():
            rounds.value += 1
    return time.perf_counter()


def _stop_later(started, stop, delay, timeout, set_at):
    try:
        started.wait(timeout)
        time.sleep(delay)
    except threading.BrokenBarrierError:
        pass  # a worker failed to start; stop the others at once
    finally:
        set_at.append(time.perf_counter())
        stop.set()


def stop_flag_demo(workers=2, run_seconds=0.3, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Children work until the parent sets a shared ``Event``; report how quickly they stop."""
    workers = check_count(workers, "workers")
    check_timeout(run_seconds, "run_seconds")
    ctx = get_context(start_method)
    started, stop, rounds = ctx.Barrier(workers + 1), ctx.Event(), ctx.Value("q", 0)
    set_at = []
    # run_many waits in the parent, so the flag is set from a thread
    stopper = threading.Thread(target=_stop_later, args=(started, stop, run_seconds, timeout, set_at), daemon=True)
    stopper.start()
    try:
        stopped_at = run_many([(_work_until_stopped, (started, stop, rounds, timeout))] * workers, start_method, timeout)
    finally:
        started.abort()  # frees the stopper if the workers never arrived
        stopper.join(timeout)
    return {
        "workers_stopped": len(stopped_at),
        "rounds_done": rounds.value,
        "slowest_stop_ms": 1000 * (max(stopped_at) - set_at[0]),
    }


# --- Manager --------------------------------------------------------------------------


def _fill_manager_objects(shared_dict, shared_list, worker, items):
    for i in range(items):
        shared_dict[f"worker{worker}-item{i}"] = worker
        shared_list.append(worker)
    return items


def manager_demo(workers=3, items=4, start_method=None, timeout=DEFAULT_TIMEOUT):
    """Several children add to one ``Manager().dict()`` and ``Manager().list()``."""
    workers = check_count(workers, "workers")
    items = check_count(items, "items", minimum=0)
    ctx = get_context(start_method)
    with ctx.Manager() as manager:
        shared_dict, shared_list = manager.dict(), manager.list()
        calls = [(_fill_manager_objects, (shared_dict, shared_list, w, items)) for w in range(workers)]
        run_many(calls, start_method=start_method, timeout=timeout)
        return {"dict": dict(sorted(shared_dict.items())), "list": sorted(shared_list)}


def _append_nested_naive(shared_dict, value):
    shared_dict["items"].append(value)  # appends to a copy that the manager sent back


def _append_nested_reassign(shared_dict, lock, value):
    with lock:  # read-modify-write of the whole list: keep other children out meanwhile
        items = shared_dict["items"]
        items.append(value)
        shared_dict["items"] = items


def _append_nested_proxy(shared_dict, value):
    shared_dict["items"].append(value)  # here "items" is itself a proxy: the append is remote


def nested_mutation_demo(workers=3, start_method=None, timeout=DEFAULT_TIMEOUT):
    """``d["items"].append(x)`` on a Manager dict is lost; two fixes keep every value."""
    workers = check_count(workers, "workers")
    ctx = get_context(start_method)
    results = {}
    with ctx.Manager() as manager:
        shared, lock = manager.dict(items=[]), manager.Lock()
        run_many([(_append_nested_naive, (shared, w)) for w in range(workers)], start_method, timeout)
        results["naive append"] = sorted(shared["items"])
        shared["items"] = []
        run_many([(_append_nested_reassign, (shared, lock, w)) for w in range(workers)], start_method, timeout)
        results["read, append, write back"] = sorted(shared["items"])
        shared["items"] = manager.list()
        run_many([(_append_nested_proxy, (shared, w)) for w in range(workers)], start_method, timeout)
        results["nested proxy"] = sorted(shared["items"])
    return results


def proxy_access_cost(accesses=2_000, value_bytes=8, start_method=None):
    """Seconds per read of one key holding ``value_bytes`` bytes: a Manager dict proxy against a plain dict."""
    accesses = check_count(accesses, "accesses")
    value_bytes = check_count(value_bytes, "value_bytes", minimum=0)
    ctx = get_context(start_method)
    plain = {"key": b"x" * value_bytes}
    start = time.perf_counter()
    for _ in range(accesses):
        plain["key"]
    plain_seconds = (time.perf_counter() - start) / accesses
    with ctx.Manager() as manager:
        proxy = manager.dict(plain)
        proxy["key"]  # warm up the connection
        start = time.perf_counter()
        for _ in range(accesses):
            proxy["key"]
        proxy_seconds = (time.perf_counter() - start) / accesses
    return {"plain_dict_s": plain_seconds, "manager_dict_s": proxy_seconds, "ratio": proxy_seconds / plain_seconds}


# --- A manager served at an address -------------------------------------------------

_STORE = {}  # lives in the manager's server process


def _get_store():
    return _STORE


class StoreManager(BaseManager):
    """A manager serving one dict, reachable by (host, port) and an authkey."""


StoreManager.register("get_store", callable=_get_store, proxytype=DictProxy)


def connect_store(address, authkey):
    """Connect to a running StoreManager and return its dict proxy (raises AuthenticationError)."""
    client = StoreManager(address=tuple(address), authkey=authkey)
    client.connect()
    return client.get_store()


def _put_remotely(address, authkey, items):
    store = connect_store(address, authkey)
    store.update(items)
    return sorted(store.keys())


def remote_manager_demo(start_method=None, timeout=DEFAULT_TIMEOUT):
    """Serve a dict on 127.0.0.1 with a random authkey; a child writes to it by address.

    A client with the wrong key is refused. Only ever listen on 127.0.0.1 (or a
    private network behind a firewall): a manager unpickles what it receives,
    and unpickling can run arbitrary code.
    """
    ctx = get_context(start_method)
    authkey = secrets.token_bytes(32)
    manager = StoreManager(address=("127.0.0.1", 0), authkey=authkey, ctx=ctx)
    manager.start()
    try:
        host, port = manager.address
        child_saw = run_in_child(
            _put_remotely, manager.address, authkey, {"from the child": 42}, start_method=start_method, timeout=timeout
        )
        store = connect_store(manager.address, authkey)
        store["from the parent"] = 7
        try:
            connect_store(manager.address, b"a wrong key")
            refused = "not refused"
        except AuthenticationError as exc:
            refused = f"{type(exc).__name__}: {exc}"
        return {
            "host": host,
            "port_is_random": port > 0,
            "child_saw_keys": child_saw,
            "store": dict(sorted(store.copy().items())),
            "wrong_key": refused,
        }
    finally:
        manager.shutdown()
