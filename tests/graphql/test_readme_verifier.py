"""The README's token verification snippet works against real tokens of the service."""

from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest

from tests.conftest import ACCESS_SECRET

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verifier():
    text = README.read_text()
    block = re.search(r"```python\n(import jwt.*?def verify_access_token.*?)```", text, re.S)
    assert block, "the README lost its verification example"
    namespace = {"ACCESS_SECRET": ACCESS_SECRET}
    exec(block.group(1), namespace)  # noqa: S102 - our own README
    return namespace["verify_access_token"]


async def test_readme_verifier_accepts_access_and_refuses_refresh(client):
    verify = readme_verifier()
    access, refresh = await client.tokens()
    claims = verify(access)
    assert claims["typ"] == "access" and claims["sub"]
    with pytest.raises(jwt.InvalidTokenError):
        verify(refresh)
