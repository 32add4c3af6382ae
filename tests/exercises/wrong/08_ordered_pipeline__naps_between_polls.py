# Ordered, prompt, notices a death and gives up after the timeout, but polls: it asks each pipe, then naps 10 ms.
import time


def in_order(conns, processes, count, timeout):
    early, next_seq, last = {}, 0, time.monotonic()
    while next_seq < count:
        for process in processes:
            if not process.is_alive():
                raise ChildProcessError(f"{process.name} died")
        got = False
        for conn in conns:
            while conn.poll():
                seq, value = conn.recv()
                early[seq] = value
                got = True
        if got:
            last = time.monotonic()
        elif time.monotonic() - last > timeout:
            raise TimeoutError(f"nothing for {timeout} s")
        while next_seq in early:
            yield early.pop(next_seq)
            next_seq += 1
        time.sleep(0.01)
