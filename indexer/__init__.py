"""Finding, decoding and embedding images."""
