# Each value as soon as it arrives, and a death noticed, but no re-ordering: the values come in finishing order.
from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    ended = {process.sentinel: process for process in processes}
    given = 0
    while given < count:
        ready = wait(list(conns) + list(ended), timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result for {timeout} s")
        for conn in ready:
            if conn in ended:
                raise ChildProcessError(f"{ended[conn].name} died")
            seq, value = conn.recv()
            yield value
            given += 1
