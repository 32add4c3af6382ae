%%writefile exercise_dict_of_lists.py
def add_values(shared, lock, key, values):
    lock.acquire()  # never released: every other process waits for ever
    shared[key] = shared[key] + values
