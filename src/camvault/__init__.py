"""camvault: archive CCTV segments to S3 and keep an access-controlled catalog in PostgreSQL."""

__version__ = "0.1.0"
