"""docs/webhooks.md's verification snippet agrees with the node's signing."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from breakwater.server.webhooks.signature import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_the_documented_verify_accepts_a_signature_and_refuses_tampering() -> None:
    """The snippet accepts a node's signature, refuses a changed body and an old timestamp."""
    match = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert match is not None
    namespace: dict[str, Any] = {}
    exec(match[1], namespace)
    verify = namespace["verify"]
    body, now = b'{"id":"whd_1"}', int(time.time())
    assert verify("s", body, sign("s", body, now))
    assert not verify("s", body + b" ", sign("s", body, now))
    assert not verify("s", body, sign("s", body, now - 3600))
    assert not verify("other", body, sign("s", body, now))
