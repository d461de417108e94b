"""The sandbox (verify's fallback, probes, services) runs as the image's User, looked up in
the image's own /etc/passwd and /etc/group, never the host's."""
from __future__ import annotations

import os

import pytest

from closure.errors import BadInput
from closure.root import Root
from closure.sandbox import User, lookup_user


def test_user_looked_up_inside_the_image_even_behind_an_absolute_link(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "real/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
    os.symlink("/real/passwd", tmp_path / "etc/passwd")   # the host has no /real/passwd
    (tmp_path / "etc/group").write_text("app:x:1001:\nweb:x:33:app,other\nstaff:x:50:\n")
    root = Root(str(tmp_path))
    assert lookup_user(root, "app") == User(1000, 1001, (33, 1001))     # its groups too
    assert lookup_user(root, "1000") == User(1000, 1001, (33, 1001))
    assert lookup_user(root, "app:50") == User(1000, 50, (33, 50))
    assert lookup_user(root, "app:staff") == User(1000, 50, (33, 50))
    assert lookup_user(root, "42") == User(42, 42, (42,)), "a number needs no entry"
    assert lookup_user(root, None) == User(0, 0, ())
    with pytest.raises(BadInput, match="'nobody-here' is not in the root's /etc/passwd"):
        lookup_user(root, "nobody-here")
    with pytest.raises(BadInput, match="group 'nogroup' is not in"):
        lookup_user(root, "app:nogroup")


def test_no_passwd_in_the_image(tmp_path):
    root = Root(str(tmp_path))
    with pytest.raises(BadInput):
        lookup_user(root, "app")
    assert lookup_user(root, "7:8") == User(7, 8, (8,))
