"""The web page at ``/``: footage review (sign-in, timeline, playback), from
``camvault/api/static``; its scripts and styles are served by ``routes_web``."""

from importlib import resources

INDEX_HTML = resources.files("camvault.api").joinpath("static", "index.html").read_text("utf-8")
