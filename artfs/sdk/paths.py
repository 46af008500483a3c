"""W&B's path forms in the SDK: ``entity/project/name:alias``, ``entity/project``,
``entity/project/run_id``, each with the entity and project optional.

artfs has no accounts: a store holds one namespace of projects. The entity of a path is
accepted and checked against the store's entity (``artfs config entity NAME``) when the store
has one, and otherwise ignored; ``wandb.init(entity=...)`` records it on the run.
"""

from __future__ import annotations

from artfs.errors import InvalidName, NotFound
from artfs.names import Ref, check_name
from artfs.store import Store


def check_entity(store: Store, entity: str | None) -> str | None:
    """``entity`` if this store answers for it (any entity when the store names none)."""
    if entity is None:
        return None
    check_name(entity, "entity")
    own = store.entity()
    if own is not None and entity != own:
        raise NotFound(
            f"entity {entity!r} is not this store's entity {own!r}: name {own!r} "
            "or leave the entity out ('artfs config entity' shows and sets it)"
        )
    return entity


def _parts(text: str, most: int, what: str, example: str) -> list[str]:
    parts = text.split("/")
    if len(parts) > most or any(not p for p in parts):
        raise InvalidName(f"invalid {what} {text!r}: expected {example}")
    return parts


def artifact_ref(store: Store, text: str, project: str | None) -> Ref:
    """``[[entity/]project/]name[:vN|:alias]``; a bare name is in ``project``."""
    base, sep, selector = text.partition(":")
    parts = _parts(base, 3, "artifact", "[ENTITY/]PROJECT/NAME[:ALIAS], e.g. proj/mnist:latest")
    if len(parts) == 3:
        check_entity(store, parts[0])
        parts = parts[1:]
    if len(parts) == 1:
        if project is None:
            raise InvalidName(
                f"invalid artifact {text!r}: name its project (PROJECT/NAME) or start a run "
                "in one first"
            )
        parts = [project, *parts]
    return Ref.parse("/".join(parts) + sep + selector)


def project_path(store: Store, text: str) -> str:
    """``[entity/]project`` -> the project."""
    parts = _parts(text, 2, "project path", "[ENTITY/]PROJECT")
    if len(parts) == 2:
        check_entity(store, parts[0])
    return check_name(parts[-1], "project name")


def run_path(store: Store, text: str) -> str:
    """``[[entity/]project/]run_id`` (also W&B's URL form ``entity/project/runs/run_id``) ->
    the run id."""
    parts = text.split("/")
    if len(parts) == 4 and parts[2] == "runs":  # the run page's URL path
        del parts[2]
    parts = _parts("/".join(parts), 3, "run path", "[ENTITY/]PROJECT/RUN_ID")
    if len(parts) == 3:
        check_entity(store, parts[0])
    return parts[-1]


def collection_name(store: Store, text: str, project: str | None) -> tuple[str, str]:
    """``[[entity/]project/]name`` of a collection (no selector) -> (project, name)."""
    if ":" in text:
        raise InvalidName(f"invalid collection {text!r}: a collection has no ':' selector")
    ref = artifact_ref(store, text, project)
    return ref.artifact.project, ref.artifact.name
