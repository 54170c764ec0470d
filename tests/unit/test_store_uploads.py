from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store.uploads import DEFAULT_TYPE, UploadStore, is_upload_id


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_put_then_open(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    blob = store.put([b"hello ", b"", b"world"], "text/plain; charset=utf-8")
    assert blob.type == "text/plain; charset=utf-8"
    assert blob.size == 11
    assert is_upload_id(blob.blob_id) and blob.blob_id.startswith("U")
    stored = store.open(blob.blob_id)
    assert stored is not None
    assert stored.path.read_bytes() == b"hello world"
    assert (stored.type, stored.size) == ("text/plain; charset=utf-8", 11)


def test_directory_is_private_and_made_on_first_put(tmp_path: Path) -> None:
    directory = tmp_path / "user" / "uploads"
    store = UploadStore(directory)
    assert store.open("U" + "a" * 32) is None
    assert not directory.exists()
    store.put([b"x"], "application/octet-stream")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_ids_are_distinct_even_for_identical_content(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    ids = {store.put([b"same"], "text/plain").blob_id for _ in range(20)}
    assert len(ids) == 20


def test_empty_upload(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    blob = store.put([], "application/octet-stream")
    stored = store.open(blob.blob_id)
    assert stored is not None and stored.size == 0 and stored.path.read_bytes() == b""


def test_open_refuses_anything_but_an_upload_id(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    blob = store.put([b"data"], "text/plain")
    (tmp_path / "secret").write_bytes(b"not an upload")
    for bad in ("", "U", blob.blob_id + ".type", blob.blob_id[:-1], "../secret",
                "U" + "../secret".ljust(32, "a"), "B" + blob.blob_id[1:]):  # fmt: skip
        assert store.open(bad) is None, bad
    assert store.open("U" + "A" * 32) is None


def test_missing_type_file_reads_as_octet_stream(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    blob = store.put([b"data"], "image/png")
    (tmp_path / (blob.blob_id + ".type")).unlink()
    stored = store.open(blob.blob_id)
    assert stored is not None and stored.type == DEFAULT_TYPE


def test_failing_stream_leaves_nothing_behind(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)

    def chunks() -> Iterator[bytes]:
        yield b"a" * 100_000
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put(chunks(), "text/plain")
    assert _files(tmp_path) == []


def test_partial_upload_is_invisible_until_committed(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    with store.begin() as writer:
        writer.write(b"part")
        # Only a temporary file exists, and nothing names it as a blob.
        [name] = _files(tmp_path)
        assert not is_upload_id(name)
        assert store.open(name) is None
    assert _files(tmp_path) == []  # the context manager aborted it


def test_reclaim_deletes_only_uploads_older_than_the_limit(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    store = UploadStore(tmp_path, clock=clock)
    old = store.put([b"old"], "text/plain")
    young = store.put([b"young"], "text/plain")
    os.utime(tmp_path / old.blob_id, (clock.now - 3601, clock.now - 3601))
    os.utime(tmp_path / young.blob_id, (clock.now - 3599, clock.now - 3599))
    assert store.reclaim() == 1
    assert store.open(old.blob_id) is None
    assert not (tmp_path / (old.blob_id + ".type")).exists()
    assert store.open(young.blob_id) is not None
    clock.now += 2
    assert store.reclaim() == 1
    assert _files(tmp_path) == []


def test_reclaim_sweeps_leftovers_of_crashed_uploads(tmp_path: Path) -> None:
    clock = Clock(os.stat(tmp_path).st_mtime)
    store = UploadStore(tmp_path, clock=clock)
    (tmp_path / ".tmp-crashed").write_bytes(b"partial")
    (tmp_path / ("U" + "b" * 32 + ".type")).write_text("text/plain")  # its data never landed
    unrelated = tmp_path / "notes"
    unrelated.write_text("not ours to delete")
    with store.begin() as writer:
        writer.write(b"in progress")
        clock.now += 7200
        assert store.reclaim() == 0
        # The upload in progress keeps its file however long it takes.
        assert len([n for n in _files(tmp_path) if n.startswith(".tmp-")]) == 1
        blob = writer.commit("text/plain")
    assert _files(tmp_path) == sorted([blob.blob_id, blob.blob_id + ".type", "notes"])


def test_put_reclaims_at_most_once_a_minute(tmp_path: Path) -> None:
    start = os.stat(tmp_path).st_mtime
    clock = Clock(start)
    store = UploadStore(tmp_path, clock=clock)

    def put_at(when: float) -> str:
        clock.now = start + when
        return store.put([b"x"], "text/plain").blob_id

    first = put_at(0)  # sweeps: the first put of the process
    second = put_at(3570)  # sweeps; the first upload is not an hour old yet
    assert store.open(first) is not None
    put_at(3610)  # 40 s after the last sweep: none now
    assert store.open(first) is not None
    put_at(3631)
    assert store.open(first) is None
    assert store.open(second) is not None


def test_reclaim_of_a_store_never_used(tmp_path: Path) -> None:
    assert UploadStore(tmp_path / "absent").reclaim() == 0
