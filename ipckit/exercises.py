"""Checks for the lessons' exercises: say plainly whether an answer is right."""


def check(answer, expected, why=""):
    """Print whether ``answer`` equals ``expected``; return True when it does.

    ``why`` is shown with a right answer, so the check cell also teaches.
    """
    if answer is None or answer is Ellipsis:
        print("Not answered yet: replace the ... in the exercise cell, run it, then run this cell again.")
        return False
    if answer == expected:
        print(f"Right: {answer!r}." + (f" {why}" if why else ""))
        return True
    print(f"Not quite: you have {answer!r}. Look again at the output above, or open the hidden solution.")
    return False
