# Ordered, prompt, and it notices a death, but it asks every pipe again and again: a core at 100 % while it waits.
def in_order(conns, processes, count, timeout):
    early = {}
    next_seq = 0
    while next_seq < count:
        for process in processes:
            if not process.is_alive():
                raise ChildProcessError(f"{process.name} died")
        for conn in conns:
            if conn.poll():
                seq, value = conn.recv()
                early[seq] = value
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
