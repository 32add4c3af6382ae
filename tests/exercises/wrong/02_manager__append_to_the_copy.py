%%writefile exercise_dict_of_lists.py
def add_values(shared, lock, key, values):
    with lock:
        for value in values:
            shared[key].append(value)
