%%writefile exercise_counter.py
def add(counter, times):
    counter.value += times  # one read and one write per call, but not under the lock: calls still collide
