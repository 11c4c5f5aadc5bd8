"""Base images (deterministic archive, idempotent build), the software measurement, the engine
connection error and the CLI registration."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import tarfile

import docker
import pytest

from executor import cli
from executor.engine import docker_client
from executor.errors import EngineUnavailable
from executor.images import BUSYBOX_IMAGE, build_busybox_image, image_archive, rootfs_tar
from executor.measure import measure, package_files, software_measurement


def test_rootfs_and_archive_are_deterministic() -> None:
    layer = rootfs_tar(b"\x7fELF fake busybox", ["sh", "cat", "busybox"])
    assert layer == rootfs_tar(b"\x7fELF fake busybox", ["sh", "cat", "busybox"])
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    assert b"65534" in tar_file(layer, "etc/passwd")
    image_id, archive = image_archive("x/y:1", layer, {"k": "v"})
    assert (image_id, archive) == image_archive("x/y:1", layer, {"k": "v"})
    config_name = image_id.removeprefix("sha256:") + ".json"
    config = tar_file(archive, config_name)
    assert "sha256:" + hashlib.sha256(config).hexdigest() == image_id
    assert json.loads(config)["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(layer).hexdigest()
    ]
    # A different binary is a different image.
    assert image_archive("x/y:1", rootfs_tar(b"other", ["sh"]), {})[0] != image_id


def tar_file(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


@pytest.mark.docker
def test_build_is_idempotent(docker_engine: docker.DockerClient, busybox_id: str) -> None:
    again = build_busybox_image(docker_engine)
    assert again.image_id == busybox_id
    assert again.created is False
    assert docker_engine.images.get(BUSYBOX_IMAGE).id == busybox_id
    # With only the tag gone (the image is kept by a second tag), the build re-tags the identical
    # image instead of loading it again.
    docker_engine.images.get(busybox_id).tag("posi/busybox", "keep")
    try:
        docker_engine.images.remove(BUSYBOX_IMAGE)
        retagged = build_busybox_image(docker_engine)
    finally:
        docker_engine.images.remove("posi/busybox:keep")
    assert (retagged.image_id, retagged.created) == (busybox_id, False)
    assert docker_engine.images.get(BUSYBOX_IMAGE).id == busybox_id


@pytest.mark.docker
def test_cli_images_build_prints_the_digest(
    busybox_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="posi-peer")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["images", "build"])
    assert args.func(args) == 0
    assert f"{BUSYBOX_IMAGE} {busybox_id}" in capsys.readouterr().out


def test_engine_unavailable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable, match="start dockerd"):
        docker_client()


def test_software_measurement_covers_the_packages(tmp_path: pathlib.Path) -> None:
    files = package_files()
    names = [rel for rel, _ in files]
    assert names == sorted(names)
    assert "executor/measure.py" in names
    assert "ledger/encoding.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert software_measurement() == measure(files)
    # Any edit to a measured file changes the measurement; so does a rename.
    a = tmp_path / "a.py"
    a.write_bytes(b"x = 1\n")
    before = measure([("pkg/a.py", a)])
    a.write_bytes(b"x = 2\n")
    assert measure([("pkg/a.py", a)]) != before
    assert measure([("pkg/b.py", a)]) != measure([("pkg/a.py", a)])
