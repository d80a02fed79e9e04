"""Old home of the S3 boundary, kept as thin aliases so existing imports keep working.

The code lives in ``camvault.s3``: ``contract`` (interfaces), ``boto`` (the boto3
implementation and the error translation), ``memory`` (the in-memory twin).
"""

from __future__ import annotations

from camvault.s3.boto import CHECKSUM_CODES as CHECKSUM_CODES
from camvault.s3.boto import PERMANENT_CODES as PERMANENT_CODES
from camvault.s3.boto import SSE as SSE
from camvault.s3.boto import STORAGE_CLASS as STORAGE_CLASS
from camvault.s3.boto import BotoObjectStore
from camvault.s3.boto import cached_conditional_writes as cached_conditional_writes
from camvault.s3.boto import error_code as error_code
from camvault.s3.boto import head_object as head_object
from camvault.s3.boto import make_client as make_client
from camvault.s3.boto import probe_conditional_writes as probe_conditional_writes
from camvault.s3.boto import translate as translate
from camvault.s3.contract import ObjectStore as ObjectStore

S3ObjectStore = BotoObjectStore
