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


def _dead_pid() -> int:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_files_honour_the_umask(tmp_path):
    import os

    from calogen.atomic import atomic_directory
    old = os.umask(0o002)
    try:
        p = write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "d") as d:
            (d / "f").write_text("y")
            os.chmod(d / "f", 0o600)  # as safetensors writes
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o775
    assert (tmp_path / "d" / "f").stat().st_mode & 0o777 == 0o664


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    import os

    from calogen.atomic import remove_stale_temporaries
    dead = _dead_pid()
    target = tmp_path / "checkpoint.pt"
    stale_file = tmp_path / f".checkpoint.pt.tmp-{dead}-0a1b2c3d.pt"
    legacy = tmp_path / f".checkpoint.{dead}.0a1b2c3d.tmp.pt"
    stale_dir = tmp_path / f".checkpoint.pt.old-{dead}-ff"
    live = tmp_path / f".checkpoint.pt.tmp-{os.getpid()}-0a1b2c3d.pt"
    other = tmp_path / f".other.pt.tmp-{dead}-0a1b2c3d.pt"
    for p in (stale_file, legacy, live, other):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "inside").write_text("x")
    removed = remove_stale_temporaries(target)
    assert sorted(removed) == sorted([stale_file, legacy, stale_dir])
    assert live.exists() and other.exists()


def test_replace_directory_keeps_the_target_present_and_swaps_content(tmp_path):
    from calogen.atomic import atomic_directory
    final = tmp_path / "best"
    with atomic_directory(final) as d:
        (d / "v").write_text("1")
    with atomic_directory(final) as d:
        (d / "v").write_text("2")
    assert (final / "v").read_text() == "2"
    assert [q.name for q in tmp_path.iterdir()] == ["best"]
    with pytest.raises(RuntimeError), atomic_directory(final) as d:
        (d / "v").write_text("3")
        raise RuntimeError("killed")
    assert (final / "v").read_text() == "2"
    assert [q.name for q in tmp_path.iterdir()] == ["best"]
