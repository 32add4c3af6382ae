"""Lesson 05's threads and its exercise check: a child program talked to line by line, never hanging.

``subprocess.Popen`` has no start method, so these run once.
"""
import queue
import subprocess
import sys
import threading

import pytest

from ipckit.lessons import talk

COMMAND = [sys.executable, "-m", "ipckit.lessons.talk"]


def test_read_lines_hands_over_each_line_then_none():
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    replies = queue.Queue()
    reader = threading.Thread(target=talk.read_lines, args=(child.stdout, replies), daemon=True)
    reader.start()
    try:
        for request, reply in [("square 12", "144"), ("upper abc", "ABC")]:
            child.stdin.write(request + "\n")
            child.stdin.flush()
            assert replies.get(timeout=10) == reply
    finally:
        child.stdin.close()
        assert child.wait(timeout=10) == 0
    assert replies.get(timeout=10) is None  # end of file
    reader.join(timeout=10)
    assert child.stdout.closed


def test_writing_without_reading_blocks_and_communicate_does_not():
    text = "".join(f"echo {'x' * 100}\n" for _ in range(3_000))
    stuck = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    writer = threading.Thread(target=talk.write_all, args=(stuck.stdin, text), daemon=True)
    writer.start()
    writer.join(timeout=0.5)
    try:
        assert writer.is_alive()  # both pipes are full: the child waits for us, we wait for the child
    finally:
        stuck.kill()
        stuck.wait(timeout=10)
        writer.join(timeout=10)
        for stream in (stuck.stdin, stuck.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
    assert not writer.is_alive()
    one_shot = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = one_shot.communicate(text, timeout=30)
    assert len(out.splitlines()) == 3_000 and one_shot.returncode == 0


# --- the exercise check ----------------------------------------------------------------


def right_talk(requests, timeout):
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    replies = queue.Queue()
    threading.Thread(target=talk.read_lines, args=(child.stdout, replies), daemon=True).start()
    try:
        answers = []
        for request in requests:
            child.stdin.write(request + "\n")
            child.stdin.flush()
            try:
                answers.append(replies.get(timeout=timeout))
            except queue.Empty:
                raise TimeoutError(f"no reply to {request!r}") from None
        return answers
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def readline_without_timeout(requests, timeout):
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        answers = []
        for request in requests:
            child.stdin.write(request + "\n")
            answers.append(child.stdout.readline().rstrip("\n"))
        return answers
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def leaves_the_child_running(requests, timeout):
    child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    replies = queue.Queue()
    threading.Thread(target=talk.read_lines, args=(child.stdout, replies), daemon=True).start()
    answers = []
    for request in requests:
        child.stdin.write(request + "\n")
        try:
            answers.append(replies.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError("late") from None
    child.stdin.close()
    child.wait(timeout=5)
    return answers


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "answer, verdict",
    [
        (right_talk, "Right: "),
        (readline_without_timeout, "Wrong: the child takes 3 s"),
        (leaves_the_child_running, "Wrong: talk raised TimeoutError as it should, but left the child running"),
    ],
    ids=["right", "readline-without-timeout", "leaves-the-child-running"],
)
def test_the_check_talks_to_a_real_child(answer, verdict, capsys):
    assert talk.check_talk(answer) is verdict.startswith("Right")
    assert capsys.readouterr().out.startswith(verdict)
