%%writefile exercise_dict_of_lists.py
def add_values(shared, lock, key, values):
    items = shared[key]
    items.extend(values)
    shared[key] = items
