from labhelpers.stream.log import StreamLogReader, StreamLogWriter, read_all_lines


def test_files_are_atomic_ordered_and_resumable(tmp_path):
    w = StreamLogWriter(tmp_path / "s")
    for i in range(5):
        w.append([f'{{"n": {i}}}', f'{{"n": {i}.5}}'])
    assert not list((tmp_path / "s").glob(".*")), "no temporary file may stay visible"
    assert read_all_lines(tmp_path / "s")[::2] == [f'{{"n": {i}}}' for i in range(5)]
    pos = tmp_path / "pos.json"
    r = StreamLogReader(tmp_path / "s", pos)
    first = r.new_files()[0]
    assert first.read_text().split() == ['{"n":', "0}", '{"n":', "0.5}"]
    r.mark_read(first)
    r2 = StreamLogReader(tmp_path / "s", pos)
    rest = [lines for _, lines in r2.read_new()]
    assert len(rest) == 4, "a new reader continues after what was read"
    assert list(StreamLogReader(tmp_path / "s", pos).read_new()) == []


def test_hidden_files_are_ignored(tmp_path):
    (tmp_path / ".part-x.inprogress").write_text("half\n")
    (tmp_path / "part-abc-0-0").write_text('{"a": 1}\n')
    assert read_all_lines(tmp_path) == ['{"a": 1}']


def test_tail_reads_the_newest_lines(tmp_path):
    from labhelpers.stream.log import tail_lines

    w = StreamLogWriter(tmp_path)
    for i in range(4):
        w.append([str(10 * i + k) for k in range(3)])
    assert tail_lines(tmp_path, 4) == ["22", "30", "31", "32"]
    assert tail_lines(tmp_path / "none", 3) == []
