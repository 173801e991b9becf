"""docs/PROTOCOL.md is the public contract: every method and error code it lists is served."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.control import build_method_table
from agent.rpc.errors import ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
# Listed in the contract, served once their issue lands; each must NOT be in the table yet,
# so this set can only shrink.
PENDING: dict[str, str] = {
}


class _NoDevice:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"building the table must not touch the device ({name})")


def _methods_in_doc(text: str) -> set[str]:
    section = text.split("## 4. Methods", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in re.findall(r"^\| (`[^|]*`) \|", section, re.M):
        names.update(re.findall(r"`([a-z]+\.[a-z_]+)`", row))
    return names


def test_every_documented_method_is_served() -> None:
    table = build_method_table(_NoDevice())  # type: ignore[arg-type]
    documented = _methods_in_doc(DOC.read_text())
    assert {"webrtc.offer", "config.set", "session.close"} <= documented
    served = {method.name for method in table}
    assert documented - served == set(PENDING)
    assert not (served & set(PENDING))


def test_every_documented_error_code_exists() -> None:
    section = DOC.read_text().split("## 3. JSON-RPC 2.0", 1)[1].split("\n## ", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (-32\d{3}) \|", section, re.M)}
    assert len(codes) == 11
    assert codes == {int(code) for code in ErrorCode}

