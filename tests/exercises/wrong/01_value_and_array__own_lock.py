%%writefile exercise_counter.py
import multiprocessing


def add(counter, times):
    lock = multiprocessing.Lock()  # a new lock in each process: nobody else ever waits for it
    for _ in range(times):
        with lock:
            counter.value += 1
