from multiprocessing.connection import wait


def in_order(conns, processes, count, timeout):
    """Yield the values of `count` results (seq, value) read from `conns`, in seq order, each as soon as it can go."""
    ended = {process.sentinel: process for process in processes}
    early = {}  # seq -> value that arrived before its turn
    next_seq = 0
    while next_seq < count:
        ready = wait(list(conns) + list(ended), timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result and no death for {timeout} s")
        for conn in ready:
            if conn in ended:  # a worker ended before we had every result
                process = ended[conn]
                raise ChildProcessError(f"{process.name} died with exit code {process.exitcode}")
            seq, value = conn.recv()
            early[seq] = value
        while next_seq in early:  # every value whose turn has come
            yield early.pop(next_seq)
            next_seq += 1
