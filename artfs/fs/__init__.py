"""What the store looks like as a tree: nodes, listings and reads (no pyfuse3)."""
