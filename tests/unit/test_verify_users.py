"""verify in bubblewrap runs as the image's User, looked up in the image's own /etc/passwd."""
from __future__ import annotations

import os

from closure.verify import _user_ids


def test_user_looked_up_inside_the_image_even_behind_an_absolute_link(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "real/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
    os.symlink("/real/passwd", tmp_path / "etc/passwd")   # the host has no /real/passwd
    root = str(tmp_path)
    assert _user_ids(root, "app") == ("1000", "1001")
    assert _user_ids(root, "1000") == ("1000", "1001")
    assert _user_ids(root, "app:50") == ("1000", "50")
    assert _user_ids(root, "42") == ("42", "42"), "a number needs no entry"
    assert _user_ids(root, "nobody-here") is None


def test_no_passwd_in_the_image(tmp_path):
    assert _user_ids(str(tmp_path), "app") is None
    assert _user_ids(str(tmp_path), "7:8") == ("7", "8")
