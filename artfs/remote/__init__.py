"""Team scale: artifacts on an S3-compatible object store (see docs/team.md)."""
