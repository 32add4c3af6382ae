"""ipckit.arrays (and the transports, packing and dtypes behind it): every transport, every dtype/shape/order,
under every start method it supports; bad input; never a hang."""
import multiprocessing
import os
import time

import numpy as np
import pytest

from ipckit import arrays, shm
from ipckit.errors import WorkerDied, WorkerTimeout
from ipckit.run import run_in_child

NAMES = list(arrays.TRANSPORTS)
REQUIRED = ["pipe_pickle", "pipe_bytes", "queue", "manager", "array", "rawarray_seq", "rawarray", "shared_memory",
            "fork_global"]
DTYPES = [
    np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64,
    np.complex64, np.complex128, np.bool_,
    ">i2", ">i4", ">u8", ">f4", ">f8", ">c16",  # big-endian: pickling below protocol 5 would return '<'
]


def _cases():
    """(label, array) for every dtype x shape x memory order: 0-d, empty, 1-D, 4-D, C, Fortran, strided views."""
    cases = []
    for dtype in DTYPES:
        base = ((np.arange(120) * 37) % 11 - 5).astype(dtype)  # negatives, zeros, a varied pattern
        if np.dtype(dtype).kind == "c":
            base = (base + 1j * base[::-1]).astype(dtype)
        name = np.dtype(dtype).str
        cases += [
            (f"{name} 0-d", np.array(base[7])),
            (f"{name} empty 1-D", base[:0]),
            (f"{name} empty 2-D", base[:0].reshape(0, 3)),
            (f"{name} 1-D", base.copy()),
            (f"{name} 4-D C", base.reshape(2, 3, 4, 5)),
            (f"{name} 4-D Fortran", np.asfortranarray(base.reshape(2, 3, 4, 5))),
            (f"{name} strided view", base.reshape(10, 12)[::2, 1::3]),
            (f"{name} transposed view", base.reshape(10, 12).T),
        ]
    return cases


CASES = _cases()


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def test_transports_cover_the_issue():
    assert set(REQUIRED) <= set(arrays.TRANSPORTS)
    for name, transport in arrays.TRANSPORTS.items():
        assert transport.name == name and transport.summary
    assert arrays.TRANSPORTS["fork_global"].start_methods == ("fork",)
    assert arrays.TRANSPORTS["fork_global"].send_before_start


def test_cases_cover_orders_and_shapes():
    arrays_ = [a for _, a in CASES]
    assert any(a.ndim == 0 for a in arrays_) and any(a.size == 0 for a in arrays_)
    assert any(a.ndim == 4 and a.flags.f_contiguous and not a.flags.c_contiguous for a in arrays_)
    assert any(not a.flags.c_contiguous and not a.flags.f_contiguous for a in arrays_)
    assert {a.dtype for a in arrays_} == {np.dtype(d) for d in DTYPES}
    assert any(a.dtype.byteorder == ">" for a in arrays_)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", NAMES)
def test_echo_every_case(name, start_method):
    """The whole dtype x shape x order table through one child per transport and start method."""
    transport = arrays.TRANSPORTS[name]
    if start_method not in transport.start_methods:
        pytest.skip(f"{name} needs {transport.start_methods}")
    sent = [a for _, a in CASES]
    back = arrays.echo_many(sent, name, start_method=start_method, timeout=60)
    assert len(back) == len(sent)
    wrong = [label for (label, a), b in zip(CASES, back, strict=True) if not _same(a, b)]
    assert wrong == []
    assert [b.dtype.str for b in back] == [a.dtype.str for a in sent]  # byte order kept, '>i4' stays '>i4'
    for (_, a), b in zip(CASES, back, strict=True):
        assert arrays.fingerprint(a) == arrays.fingerprint(b)
        assert not np.shares_memory(a, b) or name == "fork_global"


@pytest.mark.parametrize("name", ["pipe_bytes", "shared_memory", "rawarray_seq"])
def test_echo_one_array(name):
    original = np.linspace(0, 1, 1000).reshape(10, 100)
    back = arrays.echo(original, name, start_method="fork")
    assert _same(original, back)


def test_echo_fork_global_comes_back_intact():
    original = np.arange(60, dtype=np.int32).reshape(3, 4, 5)
    assert _same(original, arrays.echo(original, "fork_global", start_method="fork"))


# --- bad input, raised in the caller before any process starts -------------------------------


@pytest.fixture
def no_child(monkeypatch):
    """Fail if anything tries to start a child."""

    def refuse(*args, **kwargs):
        raise AssertionError("a child process was started for bad input")

    monkeypatch.setattr(arrays, "Child", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)


def test_object_dtype_says_why(no_child):
    with pytest.raises(TypeError, match="object arrays.*pointer"):
        arrays.echo(np.array([1, "a", None], dtype=object), "pipe_pickle")


def test_string_dtype_and_non_arrays_are_refused(no_child):
    with pytest.raises(TypeError, match="not supported"):
        arrays.echo(np.array(["a", "b"]), "pipe_bytes")
    with pytest.raises(TypeError, match="numpy.ndarray, not list"):
        arrays.echo([1.0, 2.0], "pipe_bytes")
    with pytest.raises(TypeError, match="list of arrays"):
        arrays.echo_many(np.zeros(3), "pipe_bytes")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_fork_global_names_the_start_method_it_needs(method, no_child):
    with pytest.raises(ValueError, match=rf"needs the 'fork' start method, not '{method}'"):
        arrays.echo(np.zeros(3), "fork_global", start_method=method)
    reason = arrays.TRANSPORTS["fork_global"].unavailable_reason(24, method)
    assert "'fork'" in reason
    assert arrays.TRANSPORTS["fork_global"].unavailable_reason(24, "fork") is None


def test_unknown_transport_lists_the_names(no_child):
    with pytest.raises(ValueError) as info:
        arrays.echo(np.zeros(3), "carrier_pigeon")
    message = str(info.value)
    assert "carrier_pigeon" in message
    assert all(name in message for name in REQUIRED)


def test_unknown_start_method_and_bad_timeout(no_child):
    with pytest.raises(ValueError, match="unknown start method"):
        arrays.echo(np.zeros(3), "pipe_bytes", start_method="teleport")
    with pytest.raises(ValueError, match="timeout"):
        arrays.echo(np.zeros(3), "pipe_bytes", timeout=0)


def test_too_little_dev_shm_is_an_error_not_sigbus(no_child, monkeypatch):
    array = np.zeros(1000)
    monkeypatch.setattr(shm, "free_bytes", lambda path=shm.SHM_DIR: 4096)
    # shared_memory needs two slots (one for the array the reader holds, one for the next), whole pages each
    with pytest.raises(shm.NotEnoughSharedMemory, match=r"shared memory of 16,384 bytes.*only 4,096 bytes are free"):
        arrays.echo(array, "shared_memory")
    with pytest.raises(shm.NotEnoughSharedMemory, match="4,096"):
        arrays.echo(array, "shared_memory_pool")
    reason = arrays.TRANSPORTS["shared_memory"].unavailable_reason(array.nbytes, "spawn")
    assert reason == "16,384 bytes of shared memory do not fit in /dev/shm (4,096 free)"
    assert arrays.TRANSPORTS["pipe_bytes"].unavailable_reason(array.nbytes, "spawn") is None


def test_practical_limits_are_reasons_not_errors():
    seq = arrays.TRANSPORTS["rawarray_seq"]
    big = seq.practical_limit + 1
    assert seq.unavailable_reason(big, "fork") == "would take minutes above 64 MiB"
    in_bursts = seq.unavailable_reason(seq.practical_limit // 4 + 1, "fork", hold=4)
    assert in_bursts == "would take minutes above 16 MiB per array in bursts of 4"
    assert seq.unavailable_reason(big, "fork", practical=False) is None
    seq.check_available(big, "fork")  # echo would still do it


def test_typecodes():
    assert arrays.typecode_for(np.float64) == "d"
    assert arrays.typecode_for(np.int8) == "b"
    assert arrays.typecode_for(np.uint16) == "H"
    assert arrays.typecode_for(np.float32, "f") == "f"
    with pytest.raises(TypeError, match=r"typecode 'f' holds float32.*not float64.*use 'd'"):
        arrays.typecode_for(np.float64, "f")
    with pytest.raises(TypeError, match="typecode 'i' holds int32"):
        arrays.typecode_for(np.float64, "i")
    for dtype in (np.float16, np.complex128, np.bool_):
        with pytest.raises(TypeError, match="no multiprocessing typecode holds"):
            arrays.typecode_for(dtype)
    with pytest.raises(ValueError, match="unknown typecode 'x'"):
        arrays.typecode_for(np.float64, "x")
    with pytest.raises(TypeError, match="object"):
        arrays.typecode_for(object)


def test_rawarray_helpers_keep_values_and_refuse_the_wrong_typecode():
    values = np.arange(12, dtype=np.int32).reshape(3, 4)
    for by_sequence in (False, True):
        raw = arrays.to_rawarray(values, by_sequence=by_sequence)
        assert _same(np.frombuffer(raw, dtype=values.dtype).reshape(values.shape), values)
    with pytest.raises(TypeError, match="typecode 'd' holds float64.*not int32"):
        arrays.to_rawarray(values, "d")  # the seed's RawArray('d', ints) would silently make floats


def test_a_link_cannot_grow_after_the_receiver_started():
    with arrays.TRANSPORTS["rawarray"].open(capacity=16, start_method="fork") as link:
        with pytest.raises(ValueError, match="at most 16 bytes.*has 80"):
            link.sender.send(np.zeros(10), timeout=1)


# --- never hang ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pipe_bytes", "queue", "manager", "shared_memory"])
def test_receive_times_out(name):
    with arrays.TRANSPORTS[name].open(64, "fork") as link:
        with pytest.raises(TimeoutError):
            link.receiver.recv(timeout=0.2)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["pipe_bytes", "queue", "shared_memory"])
def test_a_dead_peer_is_noticed_at_once(name, start_method):
    ctx = multiprocessing.get_context(start_method)
    with arrays.TRANSPORTS[name].open(64, start_method) as link:
        peer = ctx.Process(target=os._exit, args=(3,))  # dies at once, sending nothing
        peer.start()
        try:
            with pytest.raises(WorkerDied):
                link.receiver.recv(timeout=20, peer=peer)
        finally:
            peer.join(5)


@pytest.mark.timeout(30)
def test_a_sender_waiting_for_a_dead_reader_is_told():
    ctx = multiprocessing.get_context("fork")
    with arrays.TRANSPORTS["shared_memory"].open(64, "fork") as link:
        peer = ctx.Process(target=os._exit, args=(0,))
        peer.start()
        try:
            with pytest.raises((WorkerDied, BrokenPipeError)):
                for _ in range(3):  # two blocks: the third send waits for the reader to release the first
                    link.sender.send(np.zeros(8), timeout=20, peer=peer)
        finally:
            peer.join(5)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["pipe_bytes", "pipe_pickle", "array"])
def test_a_sender_whose_reader_stalls_gives_up_in_time(name, start_method):
    """The reader lives on but never reads: each send waits (for room in the pipe, or a reply) at most its timeout."""
    ctx = multiprocessing.get_context(start_method)
    big = np.zeros(2**20)  # 8 MiB: far more than a pipe holds
    with arrays.TRANSPORTS[name].open(big.nbytes, start_method) as link:
        peer = ctx.Process(target=time.sleep, args=(20,))
        peer.start()
        try:
            began = time.monotonic()
            with pytest.raises(WorkerTimeout, match=r"from .* within 0\.5 s"):
                for _ in range(3):
                    link.sender.send(big, timeout=0.5, peer=peer)
            assert time.monotonic() - began < 10
        finally:
            peer.terminate()
            peer.join(5)


# --- pack / unpack -----------------------------------------------------------------------------------


def _three_d_list():
    return [
        np.arange(27, dtype=np.int64).reshape(3, 3, 3),
        np.linspace(-1, 1, 40, dtype=np.float32).reshape(2, 4, 5),
        np.ones((1, 2, 3), dtype=np.bool_),
        np.asfortranarray(np.arange(24, dtype=np.uint16).reshape(2, 3, 4)),
        np.zeros((0, 3, 3), dtype=np.complex128),
    ]


def test_pack_keeps_shapes_and_dtypes():
    items = _three_d_list()
    buffer, layout = arrays.pack(items)
    assert len(layout.entries) == len(items)
    assert all(entry.offset % 64 == 0 for entry in layout.entries)
    assert layout.nbytes >= sum(a.nbytes for a in items)
    back = arrays.unpack(buffer, layout)
    assert all(_same(a, b) for a, b in zip(items, back, strict=True))
    views = arrays.unpack(buffer, layout, copy=False)
    views[0][0, 0, 0] = 99
    assert arrays.unpack(buffer, layout)[0][0, 0, 0] == 99  # views share the buffer; copies do not
    assert back[0][0, 0, 0] == 0


def test_pack_into_a_given_buffer_and_bad_input():
    items = _three_d_list()
    layout = arrays.layout_of(items)
    target = bytearray(layout.nbytes)
    arrays.pack(items, into=target)
    assert all(_same(a, b) for a, b in zip(items, arrays.unpack(target, layout), strict=True))
    with pytest.raises(ValueError, match="at least"):
        arrays.pack(items, into=bytearray(8))
    with pytest.raises(TypeError, match="list"):
        arrays.pack(np.zeros((2, 3, 3)))
    with pytest.raises(TypeError, match="item 1: object"):
        arrays.pack([np.zeros(2), np.array([None])])
    with pytest.raises(TypeError, match="Layout"):
        arrays.unpack(target, [(0, (3,), "<f8")])


def test_a_child_unpacks_what_travelled_at_its_creation(start_method):
    items = _three_d_list()
    packed, layout = arrays.pack(items, start_method=start_method)  # a RawArray: it travels when the child starts
    seen = run_in_child(arrays.unpack, packed, layout, start_method=start_method)
    assert all(_same(a, b) for a, b in zip(items, seen, strict=True))


def test_fingerprint_tells_arrays_apart():
    a = np.arange(10.0)
    assert arrays.fingerprint(a) == arrays.fingerprint(a.copy())
    assert arrays.fingerprint(a) != arrays.fingerprint(a.astype(np.float32))
    assert arrays.fingerprint(a) != arrays.fingerprint(a.reshape(2, 5))
    b = a.copy()
    b[3] = -0.0 if b[3] == 0 else b[3] + 1e-12
    assert arrays.fingerprint(a) != arrays.fingerprint(b)


# --- the contract: an array from recv() stays intact until the next recv() or release() -------------


def _frames(count, size=1000):
    return [np.full(size, index, dtype=np.int32) for index in range(count)]


def test_shared_memory_never_writes_under_a_held_array():
    """Both ends here, so what the sender may and may not do is visible without timing luck."""
    f0, f1, f2, f3 = _frames(4)
    with arrays.TRANSPORTS["shared_memory"].open(f0.nbytes, "fork") as link:
        link.sender.send(f0, timeout=1)
        link.sender.send(f1, timeout=1)  # the second block: no need to wait for the reader
        a0 = link.receiver.recv(timeout=1)
        with pytest.raises(TimeoutError, match="release"):
            link.sender.send(f2, timeout=0.2)  # would write into a0's block while the reader holds a0
        assert np.array_equal(a0, f0)
        a1 = link.receiver.recv(timeout=1)  # done with a0: its block is free again
        link.sender.send(f2, timeout=1)
        assert np.array_equal(a1, f1)  # held, so untouched by the send after it
        link.receiver.release()  # done with a1 before the next recv(): its block is free too
        link.sender.send(f3, timeout=1)
        assert np.array_equal(link.receiver.recv(timeout=1), f2)
        assert np.array_equal(link.receiver.recv(timeout=1), f3)


def test_hold_lets_the_reader_keep_several_arrays():
    frames = _frames(5)
    with arrays.TRANSPORTS["shared_memory"].open(frames[0].nbytes, "fork", hold=3) as link:
        for frame in frames[:4]:  # hold + 1 blocks: four sends before the reader has taken any
            link.sender.send(frame, timeout=1)
        held = [link.receiver.recv(timeout=1) for _ in range(3)]
        with pytest.raises(TimeoutError):
            link.sender.send(frames[4], timeout=0.2)
        fourth = link.receiver.recv(timeout=1)  # releases the oldest (frame 0) only
        link.sender.send(frames[4], timeout=1)
        assert [int(a[0]) for a in held[1:] + [fourth]] == [1, 2, 3]
        assert all(np.array_equal(a, f) for a, f in zip(held[1:] + [fourth], frames[1:4], strict=True))
    with pytest.raises(ValueError, match="hold must be at least 1"):
        arrays.TRANSPORTS["shared_memory"].open(8, "fork", hold=0)


def test_shared_memory_capacity_is_fixed_when_the_link_opens():
    with arrays.TRANSPORTS["shared_memory"].open(4096, "fork") as link:
        link.sender.send(np.zeros(512), timeout=1)  # exactly one page
        with pytest.raises(ValueError, match="at most 4,096 bytes.*larger capacity"):
            link.sender.send(np.zeros(513), timeout=1)
        assert np.array_equal(link.receiver.recv(timeout=1), np.zeros(512))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "fork_global"])
def test_every_receiver_has_release(name):
    with arrays.TRANSPORTS[name].open(64, "fork") as link:
        link.receiver.release()  # nothing held: nothing to do, never an error


# --- masked arrays, refused in the caller -------------------------------------------------------------


MASKED = np.ma.masked_array(np.arange(4.0), mask=[0, 1, 0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_masked_arrays_are_refused_before_a_child_starts(name, no_child):
    with pytest.raises(TypeError, match="masked arrays are not supported.*mask"):
        arrays.echo(MASKED, name, start_method="fork")


@pytest.mark.parametrize("name", NAMES)
def test_masked_arrays_are_refused_by_every_sender(name):
    with arrays.TRANSPORTS[name].open(64, "fork") as link:
        with pytest.raises(TypeError, match="masked arrays"):
            link.sender.send(MASKED, timeout=1)


def test_masked_arrays_are_refused_by_pack():
    with pytest.raises(TypeError, match="item 1: masked arrays"):
        arrays.pack([np.zeros(2), MASKED])
    with pytest.raises(TypeError, match="masked arrays"):
        arrays.fingerprint(MASKED)
