"""artfsd: the FUSE daemon that mounts an artfs store (pyfuse3 + trio)."""
