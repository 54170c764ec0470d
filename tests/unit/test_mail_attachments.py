from __future__ import annotations

from bridge.mail.attachments import (
    has_attachment,
    leaves_from_body_part,
    leaves_from_bodystructure,
)

TEXT = (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1, None, None,
        None, None)  # fmt: skip
HTML = (b"text", b"html", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1, None, None,
        None, None)  # fmt: skip
PDF = (b"application", b"pdf", (b"name", b"a.pdf"), None, None, b"base64", 100, None,
       (b"attachment", (b"filename", b"a.pdf")), None, None)  # fmt: skip
LOGO = (b"image", b"png", None, b"<logo@x>", None, b"base64", 100, None, (b"inline", None),
        None, None)  # fmt: skip
INLINE_TEXT_FILE = (b"text", b"plain", None, None, None, b"7bit", 10, 1, None,
                    (b"attachment", (b"filename", b"notes.txt")), None, None)  # fmt: skip


def test_bodystructure_rule() -> None:
    assert not has_attachment(leaves_from_bodystructure(TEXT))
    assert not has_attachment(leaves_from_bodystructure(([TEXT, HTML], b"alternative")))
    related = ([HTML, LOGO], b"related")
    assert not has_attachment(leaves_from_bodystructure(([TEXT, related], b"alternative")))
    assert has_attachment(leaves_from_bodystructure(([TEXT, PDF], b"mixed")))
    assert has_attachment(leaves_from_bodystructure(([TEXT, INLINE_TEXT_FILE], b"mixed")))


def test_the_same_rule_on_parsed_parts() -> None:
    structure = {"type": "multipart/mixed", "subParts": [
        {"type": "text/plain", "disposition": None},
        {"type": "image/png", "disposition": "inline", "cid": "logo@x"},
    ]}  # fmt: skip
    assert not has_attachment(leaves_from_body_part(structure))
    structure["subParts"].append({"type": "application/pdf", "disposition": "attachment"})
    assert has_attachment(leaves_from_body_part(structure))
