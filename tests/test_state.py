import pytest

from ipckit import state


def test_child_changes_do_not_reach_the_parent(start_method):
    report = state.globals_demo(start_method)
    assert report["parent_sees"] == ["written by the parent"]
    assert report["child_sees"][-1] == "appended by the child"
    inherited = start_method == "fork"
    assert ("written by the parent" in report["child_sees"]) == inherited
    assert state.NOTES == []


def test_big_global_is_shared_copy_on_write_under_fork_only(start_method):
    report = state.big_global_demo(32, start_method)
    if start_method != "fork":
        assert report["child_has_global"] is False
        return
    assert report["checksum"] == report["parent_checksum"]
    assert report["copied_by_reading_mib"] < 8  # reading shares the parent's pages
    assert report["copied_by_writing_mib"] > 24  # writing copies them
    assert state.BIG_GLOBAL is None


def test_lock_keeps_every_increment(start_method):
    assert state.count_together(3, 5_000, use_lock=True, start_method=start_method) == 15_000


def test_without_lock_updates_are_lost():
    # the race is real but not certain in one try; it shows up within a few
    lost = [state.count_together(4, 20_000, use_lock=False, start_method="fork") < 80_000 for _ in range(5)]
    assert any(lost)


def test_shared_array_slices(start_method):
    report = state.shared_array_demo(3, 7, start_method)
    assert report["values"] == [0, 0, 1, 1, 2, 2, 2]
    assert report["written_per_child"] == [2, 2, 3]


def test_event_stops_every_worker(start_method):
    report = state.stop_flag_demo(2, 0.2, start_method)
    assert report["workers_stopped"] == 2
    assert report["rounds_done"] > 0
    assert report["slowest_stop_ms"] < 1000


def test_manager_dict_and_list_collect_from_every_child(start_method):
    report = state.manager_demo(3, 2, start_method)
    assert len(report["dict"]) == 6
    assert report["list"] == [0, 0, 1, 1, 2, 2]


def test_nested_append_is_lost_and_both_fixes_keep_it(start_method):
    report = state.nested_mutation_demo(3, start_method)
    assert report == {"naive append": [], "read, append, write back": [0, 1, 2], "nested proxy": [0, 1, 2]}


def test_proxy_access_is_much_slower_than_a_dict():
    report = state.proxy_access_cost(200, start_method="fork")
    assert report["manager_dict_s"] > report["plain_dict_s"]


def test_remote_manager_by_address_with_authkey(start_method):
    report = state.remote_manager_demo(start_method)
    assert report["host"] == "127.0.0.1"
    assert report["store"] == {"from the child": 42, "from the parent": 7}
    assert report["wrong_key"].startswith("AuthenticationError")


@pytest.mark.parametrize("bad", [0, -1])
def test_counts_must_be_positive(bad):
    with pytest.raises(ValueError, match="at least 1"):
        state.lost_updates_demo(processes=bad)
