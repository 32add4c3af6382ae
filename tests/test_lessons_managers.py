"""Lesson 02's workers, the manager at an address with its connection deadline, and the exercise check."""
import operator
import secrets
import socket
import threading
import time
from collections import Counter
from multiprocessing import AuthenticationError
from pathlib import Path

import pytest

import ipckit
from ipckit.lessons import managers

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
WRONG = Path(__file__).resolve().parent / "exercises" / "wrong"


def _run_all(ctx, target, arg_tuples, timeout=30):
    children = [ctx.Process(target=target, args=args) for args in arg_tuples]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(timeout)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)
    return [child.exitcode for child in children]


def test_children_fill_one_dict_and_one_list(start_method):
    ctx = ipckit.get_context(start_method)
    with ctx.Manager() as manager:
        shared_dict, shared_list = manager.dict(), manager.list()
        assert _run_all(ctx, managers.fill, [(shared_dict, shared_list, w, 2) for w in range(3)]) == [0, 0, 0]
        assert len(shared_dict) == 6
        assert sorted(shared_list) == [0, 0, 1, 1, 2, 2]


def test_a_nested_append_is_lost_and_both_fixes_keep_it(start_method):
    ctx = ipckit.get_context(start_method)
    with ctx.Manager() as manager:
        shared, lock = manager.dict(items=[]), manager.Lock()
        _run_all(ctx, managers.append_naive, [(shared, w) for w in range(3)])
        assert shared["items"] == []
        _run_all(ctx, managers.append_write_back, [(shared, lock, w) for w in range(3)])
        assert sorted(shared["items"]) == [0, 1, 2]
        shared["items"] = manager.list()
        _run_all(ctx, managers.append_to_nested, [(shared, w) for w in range(3)])
        assert sorted(shared["items"]) == [0, 1, 2]


def test_a_namespace_keeps_attributes_but_not_appends(start_method):
    ctx = ipckit.get_context(start_method)
    with ctx.Manager() as manager:
        namespace = manager.Namespace()
        namespace.last_writer, namespace.names = None, []
        assert _run_all(ctx, managers.sign_namespace, [(namespace, n) for n in "abc"]) == [0, 0, 0]
        assert namespace.last_writer in set("abc")
        assert namespace.names == []


def test_a_pool_takes_a_manager_queue_but_not_a_plain_one(start_method):
    ctx = ipckit.get_context(start_method)
    plain = ctx.Queue()
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        with pytest.raises(RuntimeError, match="through inheritance"):
            pool.apply_async(managers.put_square, (plain, 3)).get(timeout=30)
        results = manager.Queue()
        pool.starmap_async(managers.put_square, [(results, x) for x in range(4)]).get(timeout=30)
        assert sorted(results.get(timeout=10) for _ in range(4)) == [0, 1, 4, 9]
    plain.close()


def test_a_proxy_read_costs_more_than_a_dict_read():
    report = managers.proxy_access_cost(200, start_method="fork")
    assert report["manager_dict_s"] > report["plain_dict_s"]


@pytest.fixture
def store_server(start_method):
    authkey = secrets.token_bytes(32)
    server = managers.StoreManager(address=("127.0.0.1", 0), authkey=authkey, ctx=ipckit.get_context(start_method))
    server.start()
    try:
        yield server, authkey
    finally:
        server.shutdown()


def test_a_child_writes_to_the_store_by_address_and_a_wrong_key_is_refused(store_server, start_method):
    server, authkey = store_server
    ctx = ipckit.get_context(start_method)
    assert _run_all(ctx, managers.put_remotely, [(server.address, authkey, {"from the child": 42})]) == [0]
    store = managers.connect_store(server.address, authkey)
    store["from the parent"] = 7
    assert store.copy() == {"from the child": 42, "from the parent": 7}
    with pytest.raises(AuthenticationError):
        managers.connect_store(server.address, b"a wrong key")


def test_a_store_proxy_works_in_a_child_whose_function_lives_elsewhere(store_server, start_method):
    """Unpickling the proxy imports this module, which registers the serializer the proxy names."""
    server, authkey = store_server
    store = managers.connect_store(server.address, authkey)
    assert _run_all(ipckit.get_context(start_method), operator.setitem, [(store, "set by a child", 1)]) == [0]
    assert store.copy() == {"set by a child": 1}


def test_200_clients_connecting_at_once_all_get_in(store_server):
    """With the stdlib's backlog of 16 and no timeout, dozens of these waited for minutes."""
    server, authkey = store_server
    outcomes = []

    def client(number):
        try:
            managers.connect_store(server.address, authkey)[number] = number
            outcomes.append("connected")
        except Exception as exc:  # each failure must be a clear, typed one
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(200)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    deadline = began + 5 * managers.CONNECT_TIMEOUT  # a client makes a few connections, each with its deadline
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a client waited past every deadline"
    assert Counter(outcomes) == {"connected": 200}
    assert len(managers.connect_store(server.address, authkey)) == 200


def test_the_client_gives_up_on_a_server_that_never_answers():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts, never answers
        began = time.monotonic()
        with pytest.raises(TimeoutError, match="did not answer within 0.5 s"):
            managers.bounded_client(silent.getsockname(), authkey=b"key", timeout=0.5)
        assert time.monotonic() - began < 3


def test_nothing_listening_is_refused_at_once():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        address = placeholder.getsockname()  # a port that was free a moment ago, closed now
    with pytest.raises(ConnectionRefusedError):
        managers.bounded_client(address, authkey=b"key", timeout=5)


def _write_answer(folder, source_path):
    first, _, rest = source_path.read_text().partition("\n")
    assert first == "%%writefile exercise_dict_of_lists.py"
    (folder / "exercise_dict_of_lists.py").write_text(rest)


@pytest.mark.parametrize("answer, right", [(SOLUTIONS / "02_manager.py", True),
                                           (WRONG / "02_manager__append_to_the_copy.py", False)],
                         ids=["solution", "append_to_the_copy"])
def test_the_check_runs_the_learners_code_in_children(start_method, answer, right, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ipckit.ENV_VAR, start_method)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_answer(tmp_path, answer)
    assert managers.check_dict_of_lists("exercise_dict_of_lists") is right
    assert capsys.readouterr().out.startswith("Right" if right else "Wrong")
