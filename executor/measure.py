"""Measurement of the node's own software: the hash a report carries in `software_measurement`.

It covers the installed files of posi-peer's top-level packages: every `.py` source and every
compiled extension (`.so`), keyed by its path relative to the package's parent directory, sorted by
that path, hashed with BLAKE3 under Domain.SOFTWARE as (path, content) pairs. Bytecode caches,
READMEs and tests are not code that runs, so they are not measured. Two nodes running the same
release from the same build measure the same value; any edited file changes it.

The measurement is self-reported: a node can lie about it. It becomes evidence only when a TEE
quote attests it (see executor.tee).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
from collections.abc import Iterable

from executor.errors import MeasurementError
from ledger.domains import Domain, hasher

PACKAGES = ("committee", "executor", "ledger", "p2p", "simnet", "vrf")
_SUFFIXES = (".py", ".so")
# A package larger than this is not posi-peer: stop instead of hashing a runaway tree.
_FILES_MAX = 10_000


def package_files(packages: Iterable[str] = PACKAGES) -> list[tuple[str, pathlib.Path]]:
    """The measured files as (relative path, absolute path), sorted by relative path.

    Raises MeasurementError if a package cannot be located; reinstall posi-peer."""
    found: list[tuple[str, pathlib.Path]] = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise MeasurementError(f"package {name!r} is not installed")
        for location in spec.submodule_search_locations:
            root = pathlib.Path(location).resolve()
            for path in root.rglob("*"):
                if path.suffix not in _SUFFIXES or "__pycache__" in path.parts:
                    continue
                if not path.is_file():
                    continue
                found.append((path.relative_to(root.parent).as_posix(), path))
                if len(found) > _FILES_MAX:
                    raise MeasurementError(f"more than {_FILES_MAX} files under {root}")
    found.sort(key=lambda item: item[0])
    return found


def measure(files: Iterable[tuple[str, pathlib.Path]]) -> bytes:
    """BLAKE3 (Domain.SOFTWARE) over length-prefixed (path, content) pairs in the given order.

    Raises MeasurementError if a file cannot be read."""
    h = hasher(Domain.SOFTWARE)
    for rel, path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise MeasurementError(f"cannot read {path}: {exc}") from None
        name = rel.encode()
        h.update(len(name).to_bytes(4, "big"))
        h.update(name)
        h.update(len(content).to_bytes(8, "big"))
        h.update(content)
    return h.digest()


@functools.cache
def software_measurement() -> bytes:
    """The measurement of this process's posi-peer installation (computed once per process).

    Raises MeasurementError if the installation is incomplete; such a node must not sign reports."""
    return measure(package_files())
