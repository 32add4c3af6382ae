# Ordered and prompt, but it waits on the pipes only: a worker that dies is noticed only by the timeout, if at all.
from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    early = {}
    next_seq = 0
    while next_seq < count:
        ready = wait(conns, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result for {timeout} s")
        for conn in ready:
            seq, value = conn.recv()
            early[seq] = value
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
