from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsflow_cli.inputs import UnreadablePath, read_inputs
from newsflow_ingest.logic import url_id

SAMPLES = Path(__file__).parents[2] / "samples"


def test_txt_first_line_is_the_title() -> None:
    [item] = read_inputs([str(SAMPLES / "seed-article.txt")])
    article = json.loads(item.value)
    assert article["title"] == "Estimated One Thousand Failaq al-Rahman Militants Leave Syrian Douma"
    assert article["text"].rstrip().endswith("Latest News")


def test_folders_are_walked_and_jsonl_lines_kept_verbatim() -> None:
    items = list(read_inputs([str(SAMPLES)]))
    labels = [i.label for i in items]
    assert any(label.endswith("articles.jsonl:5") for label in labels)
    broken = next(i for i in items if i.label.endswith("articles.jsonl:5"))
    assert broken.value.startswith(b'{"id": "demo-broken-json"')
    assert len({i.trace_id for i in items}) == len(items)


def test_unreadable_encodings_are_sent_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("Titel\nGrüße".encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes("Title\nBody".encode("utf-16"))
    latin, utf16 = sorted(read_inputs([str(tmp_path)]), key=lambda i: i.label)
    assert latin.value == "Titel\nGrüße".encode("latin-1")
    assert json.loads(utf16.value) == {"title": "Title", "text": "Body", "metadata": {"file": "utf16.txt"}}


def test_json_arrays_become_one_input_each(tmp_path: Path) -> None:
    (tmp_path / "many.json").write_text('[{"text": "a"}, {"text": "b"}]')
    assert [json.loads(i.value)["text"] for i in read_inputs([str(tmp_path / "many.json")])] == ["a", "b"]


def test_unknown_paths_and_types_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UnreadablePath, match="no such file"):
        list(read_inputs([str(tmp_path / "missing.txt")]))
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    with pytest.raises(UnreadablePath, match=r"not '\.pdf'"):
        list(read_inputs([str(tmp_path / "doc.pdf")]))


def test_a_lone_surrogate_in_a_json_file_is_sent_escaped_with_the_rest(tmp_path: Path) -> None:
    """Encoding the array's items as UTF-8 raised on a lone surrogate, and the command stopped before sending any."""
    listed = tmp_path / "list.json"
    listed.write_text('[{"id": "ok-1", "text": "Fine article."}, {"id": "bad", "text": "a\\ud800b"}]')
    first, second = read_inputs([str(listed)])
    assert json.loads(first.value) == {"id": "ok-1", "text": "Fine article."}
    assert second.value == b'{"id": "bad", "text": "a\\ud800b"}'  # ingest replaces it with U+FFFD


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_one_object_in_a_json_file_is_sent_as_utf8_whatever_the_file_was(tmp_path: Path, encoding: str) -> None:
    """Python's reader takes a BOM and UTF-16; the file's own bytes went to ingest, which reads UTF-8 only."""
    single = tmp_path / "one.json"
    single.write_text('{"id": "one", "text": "Caf\u00e9 opens."}', encoding=encoding)
    [item] = read_inputs([str(single)])
    assert item.value.decode("utf-8") == '{"id": "one", "text": "Caf\u00e9 opens."}'


def test_records_are_keyed_by_the_id_ingest_will_give_them(tmp_path: Path) -> None:
    """Versions of one article must keep their order: the raw topic is keyed like every later one."""
    lines = [
        {"id": "wire-1", "url": "https://example.com/a", "text": "v1"},
        {"url": "https://example.com/b", "text": "b"},
        {"id": " ", "url": "https://example.com/c", "text": "blank id"},
        {"id": 7, "text": "a number is not an id; ingest says so"},
        {"text": "neither"},
        {"id": "x" * 5000, "text": "no key past MAX_KEY_BYTES"},
    ]
    (tmp_path / "feed.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n[1, 2]\n{broken\n")
    (tmp_path / "many.json").write_text(json.dumps([{"id": "wire-2", "text": "a"}, {"text": "b"}]))
    (tmp_path / "one.json").write_text(json.dumps({"url": "HTTPS://Example.com/d/#top", "text": "d"}))
    (tmp_path / "story.txt").write_text("Title\nBody")
    keys = {i.label.rsplit("/", 1)[-1]: i.key for i in read_inputs([str(tmp_path)])}
    assert keys == {
        "feed.jsonl:1": b"wire-1",
        "feed.jsonl:2": url_id("https://example.com/b").encode(),  # the id ingest gives it
        "feed.jsonl:3": url_id("https://example.com/c").encode(),
        "feed.jsonl:4": None,
        "feed.jsonl:5": None,
        "feed.jsonl:6": None,
        "feed.jsonl:7": None,
        "feed.jsonl:8": None,
        "many.json[0]": b"wire-2",
        "many.json[1]": None,
        "one.json": url_id("https://example.com/d").encode(),  # one story, one URL, as ingest has it
        "story.txt": None,
    }


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000, '{"a": ' * 993 + "{}" + "}" * 993, '{"text": "x", "count": 1' + "0" * 5000 + "}"],
    ids=["nested past Python's parser", "read but nested past Python's writer", "an integer longer than Python reads"],
)
def test_json_files_python_cannot_read_are_sent_as_they_are(tmp_path: Path, content: str) -> None:
    """Both stopped `newsflow push` with a traceback before it sent anything; ingest dead-letters them with reasons."""
    for suffix in (".json", ".jsonl"):
        (tmp_path / f"hostile{suffix}").write_text(content)
        [item] = read_inputs([str(tmp_path / f"hostile{suffix}")])
        assert (item.value, item.key) == (content.encode(), None)


def test_file_names_that_are_not_utf8_are_sent_and_shown(tmp_path: Path) -> None:
    """`newsflow push` of a folder holding caf\\xe9.txt ended in a UnicodeEncodeError and sent nothing, good files
    included: the name reached the record (metadata.file) and the screen with lone surrogates in it."""
    folder = bytes(tmp_path) + b"/odd"
    Path(folder.decode(errors="surrogateescape")).mkdir()
    for name, content in [(b"caf\xe9.txt", b"Title\nBody text."), (b"p\xff.html", b"<p>Hello page.</p>")]:
        with open(folder + b"/" + name, "wb") as file:
            file.write(content)
    text, html = read_inputs([str(tmp_path / "odd")])
    assert json.loads(text.value)["metadata"] == {"file": "caf\udce9.txt"}  # escaped: ingest makes it U+FFFD
    assert json.loads(html.value)["html"] == "<p>Hello page.</p>"
    assert text.label.endswith("caf\ufffd.txt")
    text.label.encode()  # printable


def test_a_file_that_cannot_be_read_is_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked.txt").write_text("Title\nBody")

    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(UnreadablePath, match=r"locked\.txt: Permission denied"):
        list(read_inputs([str(tmp_path)]))
