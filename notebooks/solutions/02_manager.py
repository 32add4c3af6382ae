%%writefile exercise_dict_of_lists.py
def add_values(shared, lock, key, values):
    """Append each of `values` to the list shared[key] (a Manager dict of lists), while other processes do the same."""
    with lock:  # from the read to the write-back, no other process may change shared[key]
        items = shared[key]  # a copy of the list, pickled by the manager's server
        items.extend(values)
        shared[key] = items  # send the whole list back
