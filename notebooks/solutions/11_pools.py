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
    results = [None] * len(items)
    with ProcessPoolExecutor(max_workers=workers, mp_context=SPAWN) as pool:
        index_of = {pool.submit(func, item): index for index, item in enumerate(items)}
        for future in as_completed(index_of, timeout=timeout):
            index = index_of[future]
            try:
                results[index] = future.result()  # done already: this does not wait
            except Exception as exc:  # the task's own exception, with its own type
                results[index] = exc
    return results
