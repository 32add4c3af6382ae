%%writefile exercise_counter.py
def add(counter, times):
    """Add 1 to the shared Value `counter`, `times` times, while other processes do the same."""
    for _ in range(times):
        with counter.get_lock():  # the read and the write of += happen while no other process can write
            counter.value += 1
