"""Receiver-URL tokens: `{PUBLIC_URL}/hooks/{provider}/{token}` names one job attempt, signed.

An itsdangerous serializer with its own salt signs (job id, provider, attempt). Verification tries
every configured key, so VIDEOHOOKS_SECRET_KEY can rotate: put the new key first, keep the old
ones until the jobs that carry them are done.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer

SALT = "videohooks.receiver.v1"


@dataclass(frozen=True)
class ReceiverClaim:
    job_id: str
    provider: str
    attempt_no: int


class InvalidToken(Exception):
    pass


class ReceiverTokens:
    def __init__(self, secret_keys: list[str]) -> None:
        # itsdangerous signs with the last key and verifies with all; ours are newest first.
        self._serializer = URLSafeSerializer(list(reversed(secret_keys)), salt=SALT)

    def issue(self, job_id: str, provider: str, attempt_no: int) -> str:
        return str(self._serializer.dumps([job_id, provider, attempt_no]))

    def verify(self, token: str) -> ReceiverClaim:
        try:
            job_id, provider, attempt_no = self._serializer.loads(token)
        except (BadData, ValueError, TypeError):
            raise InvalidToken("invalid receiver token") from None
        return ReceiverClaim(str(job_id), str(provider), int(attempt_no))
