"""The fork copy-on-write global of lesson 06 (lessons 00-02's workers are tested in test_lessons_*.py)."""
from ipckit import state


def test_big_global_is_shared_copy_on_write_under_fork_only(start_method):
    report = state.big_global_demo(32, start_method)
    if start_method != "fork":
        assert report["child_has_global"] is False
        return
    assert report["checksum"] == report["parent_checksum"]
    assert report["copied_by_reading_mib"] < 8  # reading shares the parent's pages
    assert report["copied_by_writing_mib"] > 24  # writing copies them
    assert state.BIG_GLOBAL is None
