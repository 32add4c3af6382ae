# Right order, but nothing comes out until every result is in: the first value waits for the slowest worker.
from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    ended = {process.sentinel: process for process in processes}
    results = {}
    while len(results) < count:
        ready = wait(list(conns) + list(ended), timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result for {timeout} s")
        for conn in ready:
            if conn in ended:
                raise ChildProcessError(f"{ended[conn].name} died")
            seq, value = conn.recv()
            results[seq] = value
    for seq in sorted(results):
        yield results[seq]
