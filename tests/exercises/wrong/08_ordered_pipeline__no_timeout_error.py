# Ordered, prompt, notices a death, but an empty list from wait() (the timeout) only makes it wait again: silent workers hang it.
from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    ended = {process.sentinel: process for process in processes}
    early, next_seq = {}, 0
    while next_seq < count:
        for conn in wait(list(conns) + list(ended), timeout=timeout):  # an empty list after the timeout: just waits again
            if conn in ended:
                raise ChildProcessError(f"{ended[conn].name} died")
            seq, value = conn.recv()
            early[seq] = value
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
