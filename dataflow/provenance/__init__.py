"""Provenance: which files a run wrote, their SHA-256 digests, optionally signed, and a check.

The raw data must be traceable to the instrument. One job per module:

- ``keys``: Ed25519 key files (``generate_key``, ``load_private_key``,
  ``load_public_key``, ``key_id``), ``canonical_json``, ``sign_record`` and
  ``check_signature``.
- ``record``: the record's layout (``build_record``: per file its digest, size, dataset
  attributes and readout counters), the writer's ``.sha256`` sidecars
  (``read_sidecar``), and the record's two copies (``write_record_file``,
  ``load_record_file``, ``attach_record``).
- ``recorder``: ``ProvenanceRecorder``, the bluesky callback that records each run once
  its files are closed.
- ``verify``: ``verify_run`` and its ``VerificationReport`` of ``Check``s and its
  ``Outcome`` (verified, failed, unverifiable: no record); ``verify_catalog_run``, what
  ``smeflow catalog verify`` runs.
- ``cli``: ``smeflow catalog verify`` and ``smeflow catalog keygen``.

Everything public is importable from ``dataflow.provenance``; see docs/provenance.md.
"""

from ..integrity import read_sidecar
from .cli import register_provenance_commands
from .errors import KeyFileError, ProvenanceError
from .keys import (
    ALGORITHM,
    SignatureState,
    canonical_json,
    check_signature,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_bytes,
    public_key_path,
    sign_record,
)
from .record import (
    ERRORS_KEY,
    METADATA_KEY,
    RECORD_DIR_NAME,
    RECORD_FORMAT,
    attach_record,
    build_record,
    dataset_attributes,
    load_record_file,
    plain,
    record_path,
    smeflow_version,
    uri_to_path,
    write_record_file,
)
from .recorder import ProvenanceRecorder, RecorderFailure
from .verify import (
    EXIT_STATUS,
    Check,
    Outcome,
    Status,
    VerificationReport,
    run_files,
    verify_catalog_run,
    verify_run,
)

__all__ = [
    "ALGORITHM", "ERRORS_KEY", "EXIT_STATUS", "METADATA_KEY", "RECORD_DIR_NAME", "RECORD_FORMAT",
    "Check", "KeyFileError", "Outcome", "ProvenanceError", "ProvenanceRecorder", "RecorderFailure",
    "SignatureState", "Status", "VerificationReport", "attach_record", "build_record",
    "canonical_json", "check_signature", "dataset_attributes", "generate_key", "key_id",
    "load_private_key", "load_public_key", "load_record_file", "plain", "public_key_bytes",
    "public_key_path", "read_sidecar", "record_path", "register_provenance_commands",
    "run_files", "sign_record", "smeflow_version", "uri_to_path", "verify_catalog_run",
    "verify_run", "write_record_file",
]
