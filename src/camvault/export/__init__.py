"""Clip exports and clipped playback: planning (``clip``), ffmpeg/PyAV (``media``), jobs
(``jobs``) and the worker pool (``worker``)."""
