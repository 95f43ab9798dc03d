import pytest

from calogen.atomic import atomic_path, write_text_atomic


def test_write_text_atomic_replaces_whole(tmp_path):
    p = tmp_path / "a.json"
    write_text_atomic(p, "one")
    write_text_atomic(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "b.png"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["b.png"]
