"""Weight provenance: parse weight files without loading them, fingerprint, compare, index."""
