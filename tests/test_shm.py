"""ipckit.shm: one owner unlinks, readers never do, no resource-tracker warnings, no SIGBUS, reusable slots.

Lesson 07's demos of the standard library's pitfalls are tested in test_lessons_shared_memory.py.
"""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ipckit import shm
from ipckit.run import run_in_child

SHM = shm.SHM_DIR


def _exists(name):
    return os.path.exists(os.path.join(SHM, name))


# --- blocks ------------------------------------------------------------------------------------


def test_owner_creates_writes_and_unlinks():
    block = shm.create(1000)
    try:
        assert block.owner and _exists(block.name) and block.size == 1000
        ref = block.write(np.arange(10, dtype=np.int32).reshape(2, 5), offset=64)
        assert ref == shm.ArrayRef(block.name, 64, (2, 5), "<i4", None)
        assert np.array_equal(block.read(ref), np.arange(10).reshape(2, 5))
    finally:
        block.close()
    assert block.closed and not _exists(block.name)
    block.close()  # twice is fine


def test_reader_attaches_and_never_unlinks():
    with shm.create(80) as owner:
        ref = owner.write(np.arange(10.0))
        reader = shm.attach(owner.name)
        assert not reader.owner
        assert np.array_equal(reader.read(ref), np.arange(10.0))
        with pytest.raises(PermissionError, match="only the owner unlinks"):
            reader.unlink()
        reader.close()
        assert _exists(owner.name)  # the reader's close left it alone
        with reader.__class__.__reduce__(owner)[0](owner.name) as again:  # what pickling gives a child
            assert not again.owner
    assert not _exists(owner.name)


def test_close_never_trips_on_a_live_view():
    """SharedMemory.close() raises BufferError while a numpy view is alive; Block.close() does not."""
    block = shm.create(80)
    ref = block.write(np.arange(10.0))
    with block.view(ref) as view:
        pass
    block.close()  # `view` is still bound: the mapping lives on until it goes
    assert not _exists(block.name)
    assert view.sum() == 45.0
    del view
    with pytest.raises(ValueError, match="closed"):
        block.read(ref)


def test_array_in_holds_the_mapping():
    import mmap

    mapping = mmap.mmap(-1, shm.PAGE)
    view = shm.array_in(mapping, (4, 2), np.int32, offset=64)
    with pytest.raises(BufferError):
        mapping.close()  # instead of unmapping under the view
    del view
    mapping.close()


def test_refs_are_checked():
    with shm.create(64) as block:
        with pytest.raises(ValueError, match="does not fit"):
            block.ref((9,), np.float64)
        with pytest.raises(TypeError, match="object"):
            block.ref((2,), object)
        with pytest.raises(TypeError, match="numpy.ndarray"):
            block.write([1, 2, 3])
        with pytest.raises(ValueError, match="points into block"):
            block.read(shm.ArrayRef("psm_other", 0, (1,), "<f8"))
    with pytest.raises(TypeError, match="name"):
        shm.attach("")
    with pytest.raises(FileNotFoundError):
        shm.attach("ipckit_no_such_block")


def test_empty_arrays_get_a_one_byte_block():
    with shm.create(0) as block:
        ref = block.write(np.zeros((0, 4)))
        assert block.read(ref).shape == (0, 4)


def test_a_child_reads_by_name(start_method):
    original = np.arange(12, dtype=np.complex64).reshape(3, 4)
    with shm.create(original.nbytes) as block:
        ref = block.write(original)
        assert np.array_equal(run_in_child(shm.read_ref, ref, start_method=start_method), original)
        assert _exists(block.name)  # the child detached without unlinking
        run_in_child(shm.write_into_ref, ref, original * 2, start_method=start_method)
        assert np.array_equal(block.read(ref), original * 2)


def _close_inherited(block):
    block.close()
    return block.owner


def test_a_forked_child_with_the_owner_object_does_not_unlink():
    with shm.create(64) as block:
        assert run_in_child(_close_inherited, block, start_method="fork") is False
        assert _exists(block.name)


# --- free space --------------------------------------------------------------------------------


def test_too_little_dev_shm_raises_before_creating(monkeypatch):
    before = set(os.listdir(SHM))
    monkeypatch.setattr(shm, "free_bytes", lambda path=SHM: 64 * 2**20)  # Docker's default
    with pytest.raises(shm.NotEnoughSharedMemory) as info:
        shm.create(100 * 2**20)
    message = str(info.value)
    assert "104,857,600 bytes" in message and "67,108,864 bytes are free" in message
    assert "SIGBUS" in message and "--shm-size" in message
    assert isinstance(info.value, MemoryError)
    assert set(os.listdir(SHM)) == before
    with pytest.raises(shm.NotEnoughSharedMemory):
        shm.SlotPool(4, 20 * 2**20)


def test_free_bytes_is_what_statvfs_says():
    real = shm.free_bytes()
    if real is not None:
        assert real == os.statvfs(SHM).f_bavail * os.statvfs(SHM).f_frsize
    assert shm.free_bytes("/no/such/directory") is None
    assert not hasattr(shm, "_pretend_free") and not hasattr(shm, "check_space")  # no test hooks in the library


def test_a_new_block_takes_its_space_at_once():
    """ftruncate alone leaves a new block's pages unallocated (still counted as free); posix_fallocate takes them."""
    before = shm.free_bytes()
    with shm.create(8 * 2**20):
        taken = before - shm.free_bytes()
    assert taken >= 8 * 2**20 - 256 * 1024  # other programs may write to /dev/shm meanwhile; not 1 MiB of slack


def test_a_failed_reservation_is_a_clear_error_and_leaves_nothing(monkeypatch):
    """When the free-space check passes but the pages are not there (another process took them), fallocate says so."""
    before = set(os.listdir(SHM))
    monkeypatch.setattr(shm, "space_problem", lambda nbytes, what=None: None)  # the first check sees room...

    def no_room(fd, offset, length):
        raise OSError(28, "No space left on device")  # ...the reservation does not find it

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    with pytest.raises(shm.NotEnoughSharedMemory, match=r"of 1,048,576 bytes does not fit in /dev/shm.*--shm-size"):
        shm.create(2**20)
    assert set(os.listdir(SHM)) == before  # the half-made block was unlinked


# --- slot pool --------------------------------------------------------------------------------------


def test_slot_pool_bookkeeping():
    with shm.SlotPool(2, 100) as pool:
        assert pool.owner and pool.free_slots == 2 and pool.stride % shm.PAGE == 0
        first, second = pool.acquire(), pool.acquire()
        assert {first, second} == {0, 1} and pool.free_slots == 0
        with pytest.raises(LookupError, match="all 2 slots are in use"):
            pool.acquire()
        ref = pool.write(first, np.arange(12, dtype=np.int64))
        assert ref.slot == first and ref.offset == first * pool.stride
        pool.release(ref)
        with pytest.raises(ValueError, match="already free"):
            pool.release(first)
        with pytest.raises(ValueError, match=r"104 bytes.*slot of 100 bytes"):
            pool.ref(second, (13,), np.int64)  # 104 bytes: one element too many
        with pytest.raises(ValueError, match="slot must be an index"):
            pool.write(2, np.zeros(1))
        with pytest.raises(ValueError, match="made by this pool"):
            pool.read(shm.ArrayRef(pool.name, 0, (1,), "<f8"))
        name = pool.name
    assert not _exists(name)


def test_slot_pool_too_big_message_names_the_sizes():
    with shm.SlotPool(1, 1000) as pool:
        with pytest.raises(ValueError) as info:
            pool.write(0, np.zeros(200))
    assert "1,600 bytes" in str(info.value) and "1,000 bytes" in str(info.value)
    assert "slot_bytes >= 1,600" in str(info.value)


def test_slot_pool_pickles_as_a_reader():
    with shm.SlotPool(2, 64) as pool:
        ref = pool.write(1, np.arange(8.0))
        copy = pickle.loads(pickle.dumps(pool))
        assert not copy.owner and np.array_equal(copy.read(ref), np.arange(8.0))
        with pytest.raises(PermissionError):
            copy.acquire()
        copy.close()
        assert _exists(pool.name) and np.array_equal(pool.read(ref), np.arange(8.0))


SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from ipckit import arrays, shm
    from ipckit.run import run_in_child

    def main(method):
        data = np.arange(1000, dtype=np.float32).reshape(10, 100)
        for name in ("shared_memory", "shared_memory_pool", "rawarray", "pipe_bytes"):
            assert np.array_equal(arrays.echo(data, name, start_method=method), data)
        with shm.create(data.nbytes) as block:
            ref = block.write(data)
            assert np.array_equal(run_in_child(shm.read_ref, ref, start_method=method), data)
        with shm.SlotPool(2, data.nbytes) as pool:  # a child computes into a slot it was given
            ref = pool.ref(pool.acquire(), data.shape, data.dtype)
            run_in_child(shm.write_into_ref, ref, data * 2, start_method=method)
            print(np.array_equal(pool.read(ref), data * 2))
        if sys.argv[2] == "forget":  # the control: an owner that never unlinks
            from multiprocessing.shared_memory import SharedMemory
            forgotten = SharedMemory(create=True, size=64)
            forgotten.close()

    if __name__ == "__main__":
        main(sys.argv[1])
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("forget", [False, True], ids=["clean", "control-forgets-to-unlink"])
def test_no_resource_tracker_warnings(start_method, forget, tmp_path):
    if forget and start_method != "spawn":
        pytest.skip("the control runs once")
    script = tmp_path / "uses_shared_memory.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), start_method, "forget" if forget else "keep"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    if forget:  # the check can fail: a leak is reported by the tracker at exit
        assert "leaked shared_memory" in done.stderr
    else:
        assert "resource_tracker" not in done.stderr and "leaked" not in done.stderr, done.stderr
        assert done.stderr == ""


@pytest.mark.parametrize("dtype", ["int8", "uint16", "float32", "complex128", "bool"])
@pytest.mark.parametrize("shape", [(), (0, 3), (5,), (2, 3, 4)])
def test_copy_out_and_lend_return_the_slot_contents(dtype, shape):
    original = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    returned = []
    with shm.SlotPool(2, 1024) as pool:
        ref = pool.write(pool.acquire(), original)
        copied = pool.copy_out(ref)
        lent = pool.lend(ref, returned.append)
        assert copied.dtype == lent.dtype == original.dtype and copied.shape == lent.shape == original.shape
        assert np.array_equal(copied, original) and np.array_equal(lent, original)
        part = lent[..., :1] if lent.ndim else lent[...]
        del lent
        assert returned == []  # a view of the loan still holds the slot
        del part
        assert returned == [ref.slot]
