"""StagedPaths, the inode numbering of staged paths (pure: no mount)."""

from __future__ import annotations

from artfs.fs.staged_paths import StagedPaths

ART = ("proj", "data")


def test_a_forgotten_committed_file_leaves_the_new_owner_of_its_backing_inode_alone() -> None:
    """a and b, one file, were committed away while the kernel held them; the backing
    filesystem gave their inode number (7) to a new file, linked as c and d. When the kernel
    forgets the old inode, every later name of the new file still gets the new file's number."""
    paths = StagedPaths()
    old = paths.inode(ART, "a")
    paths.link(ART, old, (1, 7), ["a", "b"])
    new = paths.inode(ART, "c")
    paths.link(ART, new, (1, 7), ["c", "d"])
    assert new != old
    paths.forget(ART, old, "a")
    assert paths.inode(ART, "e", (1, 7)) == new  # a third name of it, looked up
    assert paths.names(new) == {"c", "d", "e"}
