%%writefile exercise_timing.py
import statistics
import time
import zlib

from ipckit.lessons.large_arrays import receive_and_stamp


def time_hand_offs(link, array, ctx, repeats=5, warmup=1, timeout=10):
    """Time `repeats` one-way hand-offs of `array` through `link` to one child, after `warmup` untimed ones."""
    expected = zlib.crc32(array)
    stamps, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=receive_and_stamp, args=(link.receiver, child_end, warmup + repeats, timeout))
    child.start()  # before any clock runs: starting a child is not part of a hand-off
    child_end.close()
    link.receiver.close()  # the child has its own copies: if it dies, send() fails instead of waiting
    seconds, intact = [], True
    try:
        for n in range(warmup + repeats):
            start = time.perf_counter()
            link.sender.send(array, timeout)
            if not stamps.poll(timeout):
                raise TimeoutError(f"no stamp from the child within {timeout} s")
            arrived = stamps.recv()  # the moment recv() returned in the child: the clock stops there
            crc = stamps.recv()  # the bytes, checked after the clock stopped
            intact = intact and crc == expected
            if n >= warmup:  # the warm-up hand-offs are checked, not timed
                seconds.append(arrived - start)
    finally:
        child.join(timeout=timeout)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
        stamps.close()
    return {"seconds": seconds, "median_s": statistics.median(seconds), "intact": intact}
