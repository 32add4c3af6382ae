from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    """Yield the values of `count` results (seq, value) read from `conns`, in seq order, each as soon as it can go."""
    sentinels = [process.sentinel for process in processes]
    early = {}
    next_seq = 0
    while next_seq < count:
        ready = wait(list(conns) + sentinels, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result and no death for {timeout} s")
        for conn in ready:
            seq, value = conn.recv()  # wrong: a ready sentinel is a number, not a pipe; the death is not named
            early[seq] = value
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
