from __future__ import annotations

from bridge.mail.attachments import has_attachment_from_bodystructure, structure_tree
from bridge.mime import email_properties, parse_message

TEXT = (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1, None, None,
        None, None)  # fmt: skip
HTML = (b"text", b"html", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1, None, None,
        None, None)  # fmt: skip
PDF = (b"application", b"pdf", (b"name", b"a.pdf"), None, None, b"base64", 100, None,
       (b"attachment", (b"filename", b"a.pdf")), None, None)  # fmt: skip
LOGO = (b"image", b"png", None, b"<logo@x>", None, b"base64", 100, None, None, None, None)
NOTES = (b"text", b"plain", None, None, None, b"7bit", 10, 1, None,
         (b"attachment", (b"filename", b"notes.txt")), None, None)  # fmt: skip


def test_bodystructure_rule() -> None:
    assert not has_attachment_from_bodystructure(TEXT)
    assert not has_attachment_from_bodystructure(([TEXT, HTML], b"alternative"))
    related = ([HTML, LOGO], b"related")
    assert not has_attachment_from_bodystructure(([TEXT, related], b"alternative"))
    assert has_attachment_from_bodystructure(([TEXT, PDF], b"mixed"))
    assert has_attachment_from_bodystructure(([TEXT, NOTES], b"mixed"))
    tree = structure_tree(([TEXT, PDF], b"mixed"))
    assert tree.subparts[1].name == "a.pdf" and tree.subparts[1].disposition == "attachment"
    assert structure_tree(LOGO).cid == "logo@x"


def test_agrees_with_the_parsed_message() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--b--\r\n"
    )
    parsed = email_properties(parse_message(raw), ["hasAttachment"], blob_id_for=str)
    assert parsed["hasAttachment"] is has_attachment_from_bodystructure(([TEXT, PDF], b"mixed"))
