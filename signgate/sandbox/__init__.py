"""Local Dfns-compatible sandbox server."""
