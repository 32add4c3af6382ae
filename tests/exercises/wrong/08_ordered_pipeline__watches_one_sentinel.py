# Ordered and prompt, but it waits on the first worker's sentinel only: another worker's death goes unnoticed.
from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    watched = list(conns) + [processes[0].sentinel]
    early, next_seq = {}, 0
    while next_seq < count:
        ready = wait(watched, timeout=timeout)
        if not ready:
            raise TimeoutError("nothing")
        for conn in ready:
            if conn == processes[0].sentinel:
                raise ChildProcessError("died")
            seq, value = conn.recv()
            early[seq] = value
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
