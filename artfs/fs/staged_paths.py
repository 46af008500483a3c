"""Inode numbers of staged paths: handed out per path, kept while the kernel holds them.

Inode numbers of staged nodes come from a counter at or above :data:`STAGED_INO_BASE` (version
nodes hash below it, see ``NodeKey.inode``), are kept while the kernel holds the node, and
follow a node (and its descendants) through renames. A path keeps its number when its content
changes in place, so a file of a based staging keeps its inode when it is copied up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from artfs.fs.backing import Identity

STAGED_INO_BASE = 1 << 62

ArtifactKey = tuple[str, str]  # (project, name)


@dataclass
class StagedPaths:
    """Which inode a staged path has, for the paths the kernel holds.

    An inode is handed out once per path and kept until the kernel forgets it; a rename moves
    the number (and those of every held descendant) to the new path, an unlink detaches it.

    Hard links: every name of one backing file has one inode. A file gets its backing
    identity recorded when it is linked, or looked up with more than one link; a later name
    with that identity gets the same number. :meth:`names` are all the known names of such an
    inode, so when the name a node is reached by goes, the node moves to another one.
    """

    _by_path: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _next: int = STAGED_INO_BASE + 1
    _by_identity: dict[tuple[str, str, int, int], int] = field(default_factory=dict)
    _linked: dict[int, tuple[tuple[str, str, int, int], set[str]]] = field(default_factory=dict)

    def inode(self, art: ArtifactKey, rel: str, identity: Identity | None = None) -> int:
        """The inode of ``rel``; ``identity`` for a file with more than one link."""
        key = (*art, rel)
        found = self._by_path.get(key)
        if found is not None:
            return found
        if identity is not None:
            found = self._by_identity.get((*art, *identity))
        if found is None:
            found = self._next
            self._next += 1
        self._by_path[key] = found
        if identity is not None:
            self._add_name(art, identity, found, rel)
        return found

    def link(self, art: ArtifactKey, ino: int, identity: Identity, names: list[str]) -> None:
        """``names`` are names of the file ``ino`` (a hard link was just made)."""
        for rel in names:
            self._by_path[(*art, rel)] = ino
            self._add_name(art, identity, ino, rel)

    def _add_name(self, art: ArtifactKey, identity: Identity, ino: int, rel: str) -> None:
        ident = (*art, *identity)
        self._by_identity[ident] = ino
        self._linked.setdefault(ino, (ident, set()))[1].add(rel)

    def _drop_name(self, ino: int, rel: str) -> None:
        linked = self._linked.get(ino)
        if linked is None:
            return
        linked[1].discard(rel)
        if not linked[1]:
            del self._linked[ino]
            # Only if it still names this inode: a file committed away can leave its backing
            # inode number to a new file, whose names have it now.
            if self._by_identity.get(linked[0]) == ino:
                del self._by_identity[linked[0]]

    def names(self, ino: int) -> set[str]:
        """The known names of a hard-linked inode (empty for any other)."""
        linked = self._linked.get(ino)
        return set(linked[1]) if linked else set()

    def detach(self, art: ArtifactKey, rel: str, ino: int | None = None) -> list[tuple[int, str]]:
        """``rel`` is gone; (inode, name) for a hard-linked inode that has other names left,
        which its node moves to."""
        key = (*art, rel)
        held = self._by_path.get(key)
        if held is None or (ino is not None and held != ino):
            return []
        del self._by_path[key]
        self._drop_name(held, rel)
        others = sorted(self.names(held))
        return [(held, others[0])] if others else []

    def forget(self, art: ArtifactKey, ino: int, rel: str) -> None:
        """The kernel forgot ``ino``: drop every name it had."""
        for name in self.names(ino) | {rel}:
            self.detach(art, name, ino)

    def move(self, art: ArtifactKey, old: str, new: str) -> list[tuple[int, str]]:
        """Renumber nothing: move ``old`` and its descendants to ``new``; (inode, new path) of
        every moved node. A node held at ``new`` before (replaced by the rename) is detached."""
        moved = self.detach(art, new)
        for key in [k for k in self._by_path if k[:2] == art and k[2].startswith(new + "/")]:
            moved += self.detach(art, key[2])
        for key in list(self._by_path):
            if key[:2] != art:
                continue
            rel = key[2]
            if rel == old or rel.startswith(old + "/"):
                ino = self._by_path.pop(key)
                target = new + rel[len(old) :]
                self._by_path[(*art, target)] = ino
                linked = self._linked.get(ino)
                if linked is not None:
                    linked[1].discard(rel)
                    linked[1].add(target)
                moved.append((ino, target))
        return moved

    def held(self, art: ArtifactKey) -> list[str]:
        """Paths of ``art`` the kernel may have cached, deepest first."""
        found = [key[2] for key in self._by_path if key[:2] == art]
        return sorted(found, key=lambda rel: -rel.count("/"))

    def __len__(self) -> int:
        return len(self._by_path)


__all__ = ["STAGED_INO_BASE", "ArtifactKey", "StagedPaths"]
