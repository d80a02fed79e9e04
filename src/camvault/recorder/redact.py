"""Camera credentials out of every log line: ffmpeg's and PyAV's messages quote the URL,
password included, so everything the recorder logs about a camera passes through here."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["Redactor", "mask_url"]


def mask_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x`` (no password: unchanged)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


class Redactor:
    """Removes a URL's password (raw and percent-decoded) from any text."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        raw = userinfo.split(":", 1)[1] if ":" in userinfo else ""
        self._secrets = sorted({s for s in (raw, unquote(raw)) if s}, key=len, reverse=True)
        self._url, self._masked = url, mask_url(url)

    def __call__(self, text: str) -> str:
        text = text.replace(self._url, self._masked)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
