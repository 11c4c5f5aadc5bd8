"""executor package: job specs, the hardened Docker sandbox, signed attestation reports and their
verification (see executor/README.md)."""
