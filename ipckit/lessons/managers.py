"""Lesson 02's workers: children that use Manager proxies, and a manager served at an address.

A proxy reaches a child as an argument of ``Process(...)`` (or of a Pool task);
every method call on it is a round trip to the manager's server process.
"""
import importlib
import socket
import threading
import time
from multiprocessing import connection, managers
from multiprocessing.managers import BaseManager, DictProxy

from ..checks import check_count, check_timeout
from ..context import get_context
from .checking import Wrong, call_with_deadline, exercise_check, learner_function, learner_module, run_children

START_TIMEOUT = 30.0  # seconds a child waits for the others before it gives up

# --- Children that use proxies -------------------------------------------------------


def fill(shared_dict, shared_list, worker, items):
    """Add ``items`` entries to a Manager dict and a Manager list: each call runs in the server."""
    for i in range(items):
        shared_dict[f"worker{worker}-item{i}"] = worker
        shared_list.append(worker)


def append_naive(shared, value):
    """``shared["items"]`` returns a pickled copy of the list; the append changes only that copy."""
    shared["items"].append(value)


def append_write_back(shared, lock, value):
    """Read the list, append, write it back, holding a manager Lock so no other child writes meanwhile."""
    with lock:
        items = shared["items"]
        items.append(value)
        shared["items"] = items


def append_to_nested(shared, value):
    """Here ``shared["items"]`` is itself a proxy (a ``manager.list()``): the append runs in the server."""
    shared["items"].append(value)


def sign_namespace(namespace, name):
    """Set an attribute of a Namespace proxy (sent to the server), and append to a list in it (a copy: lost)."""
    namespace.last_writer = name
    namespace.names.append(name)


def put_square(results, x):
    """A Pool task: put ``x * x`` on a queue received as an argument."""
    results.put(x * x)


def proxy_access_cost(accesses=2_000, value_bytes=8, start_method=None):
    """Seconds per read of one key holding ``value_bytes`` bytes: a Manager dict proxy against a plain dict."""
    accesses = check_count(accesses, "accesses")
    value_bytes = check_count(value_bytes, "value_bytes", minimum=0)
    plain = {"key": b"x" * value_bytes}
    start = time.perf_counter()
    for _ in range(accesses):
        plain["key"]
    plain_seconds = (time.perf_counter() - start) / accesses
    with get_context(start_method).Manager() as manager:
        proxy = manager.dict(plain)
        proxy["key"]  # the first access opens this thread's connection to the server
        start = time.perf_counter()
        for _ in range(accesses):
            proxy["key"]
        proxy_seconds = (time.perf_counter() - start) / accesses
    return {"plain_dict_s": plain_seconds, "manager_dict_s": proxy_seconds, "ratio": proxy_seconds / plain_seconds}


# --- A manager at an address, with a deadline on every connection --------------------
#
# The standard library's manager server listens with a backlog of 16 connections (128
# from Python 3.13, cpython gh-101225), and its client, ``connection.Client``, has no
# timeout. When many clients connect at once, a connection that overflows the queue
# can wait for minutes. A manager picks its listener and its client by serializer
# name from ``multiprocessing.managers.listener_client``; this module registers a pair
# under SERIALIZER when it is imported: the same pickled messages, a longer queue, and
# a client with a deadline. Every process that uses a StoreManager imports this module
# on its own: the manager's server and any child that receives a StoreProxy unpickle a
# class defined here.

BACKLOG = 1024  # connections the server's socket holds before accept() (Linux caps it at net.core.somaxconn)
CONNECT_TIMEOUT = 10.0  # seconds a client waits to be connected and to hear from the server
SERIALIZER = "pickle-with-deadline"


def roomy_listener(address=None, family=None, backlog=1, authkey=None):
    """``connection.Listener`` with room for at least BACKLOG connections waiting to be accepted."""
    return connection.Listener(address, family, max(backlog, BACKLOG), authkey)


def bounded_client(address, family=None, authkey=None, timeout=None):
    """``connection.Client`` with a deadline: TimeoutError if the server has not answered within ``timeout`` s.

    The stdlib client connects, then waits for the server's first message (its
    challenge) for ever, and a connection that overflowed the server's queue may
    never get one. Here the connect and that wait share one deadline (default
    CONNECT_TIMEOUT). Once the server has spoken, a thread of its own serves this
    connection, and the rest of the handshake is a quick exchange.
    """
    timeout = CONNECT_TIMEOUT if timeout is None else check_timeout(timeout)
    if connection.address_type(address) != "AF_INET":  # a Unix socket or a Windows pipe: no network to wait for
        return connection.Client(address, family, authkey)
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(address, timeout=timeout)
    except TimeoutError:
        raise TimeoutError(f"no connection to the manager at {address} within {timeout} s") from None
    sock.setblocking(True)  # Connection reads and writes the raw descriptor
    conn = connection.Connection(sock.detach())
    try:
        if authkey is not None:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the manager at {address} did not answer within {timeout} s")
            connection.answer_challenge(conn, authkey)
            connection.deliver_challenge(conn, authkey)
    except BaseException:
        conn.close()
        raise
    return conn


managers.listener_client[SERIALIZER] = (roomy_listener, bounded_client)

_STORE = {}  # lives in the manager's server process


def get_store():
    """The one dict the server holds; clients get a StoreProxy to it."""
    return _STORE


class StoreProxy(DictProxy):
    """A DictProxy whose class lives in this module: a child that unpickles one imports it, and so knows SERIALIZER."""


class StoreManager(BaseManager):
    """A manager serving one dict at an address; its connections have a deadline and a long queue."""

    def __init__(self, address=None, authkey=None, serializer=SERIALIZER, **kwargs):
        super().__init__(address, authkey, serializer, **kwargs)


StoreManager.register("get_store", callable=get_store, proxytype=StoreProxy)


def connect_store(address, authkey):
    """Connect to a running StoreManager by address and key; return its dict proxy.

    Raises AuthenticationError for a wrong key, TimeoutError if the server does
    not answer within CONNECT_TIMEOUT s, ConnectionRefusedError if nothing listens.
    """
    client = StoreManager(address=tuple(address), authkey=authkey)
    client.connect()
    return client.get_store()


def put_remotely(address, authkey, items):
    """A child that did not start the manager: connect by address and key, then write ``items`` into the store."""
    connect_store(address, authkey).update(items)


# --- Exercise: a dict of lists, updated by several processes --------------------------

EXERCISE_MODULE = "exercise_dict_of_lists"


class ReadsThatMeet(dict):
    """A dict whose reads return a copy, as a proxy does, and wait up to a moment for a second reader.

    Two callers that do not hold the lock from the read to the write-back both
    read the same list here, every time, so one write-back erases the other's
    values: a lost update made certain instead of left to the scheduler.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.meeting = threading.Barrier(2)

    def __getitem__(self, key):
        value = list(super().__getitem__(key))
        try:
            self.meeting.wait(0.5)  # a caller holding the lock waits alone, breaks the barrier, and goes on
        except threading.BrokenBarrierError:
            pass
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default


def overlapping_calls(add_values, timeout):
    """Call ``add_values`` from two threads at once on a :class:`ReadsThatMeet`; return what the list holds."""
    shared, lock, errors = ReadsThatMeet(both=[0]), threading.Lock(), []

    def call(value):
        try:
            add_values(shared, lock, "both", [value])
        except Exception as exc:  # reported below, in the check's thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(value,), daemon=True) for value in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise Wrong(f"two add_values calls at once did not return within {timeout:.0f} s: is the lock released?")
    if errors:
        raise errors[0]
    return sorted(dict.__getitem__(shared, "both"))


def run_learner_add_values(module_name, shared, lock, together, key, batches):
    """Child side of the check: import the learner's module, wait for the others, call its add_values() per batch."""
    add_values = importlib.import_module(module_name).add_values
    together.wait(START_TIMEOUT)
    for values in batches:
        add_values(shared, lock, key, values)


@exercise_check
def check_dict_of_lists(module_name=EXERCISE_MODULE, processes=4, calls=200, timeout=20.0):
    """Run the learner's ``add_values(shared, lock, key, values)`` in children that share keys; nothing may be lost.

    Each child calls it ``calls`` times with two values, so that children writing
    the same key without the lock collide, and lose values, on almost every run.
    """
    add_values = learner_function(learner_module(module_name), "add_values")
    ctx = get_context()
    keys = ["even", "odd"]
    with ctx.Manager() as manager:
        probe, lock = manager.dict(solo=[0]), manager.Lock()
        # in this process first: a skeleton says "Not yet" here
        if not call_with_deadline(add_values, (probe, lock, "solo", [1, 2]), timeout)[0]:
            raise Wrong(f"add_values(shared, lock, 'solo', [1, 2]) did not return within {timeout:.0f} s")
        left = probe.copy()
        if left != {"solo": [0, 1, 2]}:
            hint = {"[0]": ": shared[key] returns a copy of the list, and appending to it changes only the copy; "
                           "write the list back",
                    "[1, 2]": ": it replaced the list; extend the list already there, then write it back"}
            raise Wrong(f"add_values(shared, lock, 'solo', [1, 2]) on {{'solo': [0]}} left {left}, "
                        f"not {{'solo': [0, 1, 2]}}{hint.get(str(left.get('solo')), '')}")
        if not lock.acquire(False):
            raise Wrong("add_values returned but still holds the lock, so every other process would wait for ever: "
                        "use `with lock:`, which releases it")
        lock.release()
        if overlapping_calls(add_values, timeout) != [0, 1, 2]:
            raise Wrong("two calls at once on the same key lost a value: both read the list before either wrote it "
                        "back; hold the shared lock from the read to the write-back")
        shared, together = manager.dict({key: [] for key in keys}), ctx.Barrier(processes)
        jobs = [(keys[child % 2], [[child * 1000 + 2 * i, child * 1000 + 2 * i + 1] for i in range(calls)])
                for child in range(processes)]
        children = [ctx.Process(target=run_learner_add_values, args=(module_name, shared, lock, together, key, batches))
                    for key, batches in jobs]
        run_children(children, timeout, "add_values", "does add_values release the lock? (use `with lock:`)")
        got = {key: sorted(shared[key]) for key in keys}
    for key in keys:
        wanted = sorted(v for k, batches in jobs if k == key for values in batches for v in values)
        if got[key] != wanted:
            lost = len(set(wanted) - set(got[key]))
            extra = len(got[key]) - len(set(got[key]))
            hint = ("the appends changed copies: write the list back into the dict"
                    if not got[key] else "two children read the same list and the second write-back erased the first's "
                    "values: hold the shared lock from the read to the write-back")
            raise Wrong(f"shared[{key!r}] holds {len(got[key])} values, not {len(wanted)} "
                        f"({lost} lost{f', {extra} twice' if extra else ''}): {hint}")
    return (f"{processes} processes, two per key, {calls} calls each: every value is in its list, once.")
