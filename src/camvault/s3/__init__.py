"""The S3 boundary: what camvault needs from an object store, and its implementations.

* ``contract`` — the Protocols (one method set per consumer need, each documented);
* ``storage.S3ObjectStore`` — the real implementation over boto3 (errors translated there);
* ``memory.MemoryObjectStore`` — a dict-backed twin with the same semantics (SSE, storage
  class, metadata, conditional writes, multipart, a fault hook) for fast unit tests;
  ``memory_archive.MemoryArchive`` is its Glacier side (``glacier.ArchiveStore``: storage
  classes, ``x-amz-restore``, RestoreObject). The catalog's twin is ``catalog.memory``.

``tests/integration/test_s3_contract.py`` runs one set of assertions against the twin and
against SeaweedFS (``test_archive_twin_contract.py``: the Glacier side against moto), so
the twins cannot drift from a real server.
"""
