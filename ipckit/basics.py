"""A Pool given a function its workers cannot import: the hang, turned into a timeout (lesson 08).

Lesson 00's workers moved to ``ipckit.lessons.start``.
"""
import gc

from .checks import check_timeout
from .context import get_context


def pool_with_function(func, start_method="spawn", wait_seconds=3.0):
    """Call ``Pool.map`` with ``func`` and give up after ``wait_seconds``.

    A Pool whose workers cannot unpickle the function does not raise: each worker
    dies and is replaced, and ``map`` waits for ever. ``map_async(...).get(timeout)``
    turns that hang into a TimeoutError; the pool is then terminated.
    """
    check_timeout(wait_seconds, "wait_seconds")
    ctx = get_context(start_method)
    pool = ctx.Pool(1)
    try:
        return {"result": pool.map_async(func, [1, 2, 3]).get(timeout=wait_seconds)}
    except Exception as exc:  # TimeoutError here; other errors reported the same way
        return {"result": f"{type(exc).__name__} after {wait_seconds} s: the pool never answered"}
    finally:
        pool.terminate()
        pool.join()
        del pool
        gc.collect()  # a Pool holds reference cycles; its semaphores go only when it is collected
