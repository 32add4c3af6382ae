%%writefile exercise_dict_of_lists.py
def add_values(shared, lock, key, values):
    for value in values:
        items = shared[key]
        items.append(value)
        shared[key] = items
