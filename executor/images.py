"""Base images built from local files: no registry, no pulls.

`build_base_images()` makes `posi/busybox:1`, the image tests and the simulator run jobs in: a
root filesystem holding Debian's static busybox, one symlink per applet in /bin, an /etc/passwd with
`nobody` (65534), and an empty /tmp. It is loaded with `docker load` from an image archive this
module writes itself, with fixed modes, owners and timestamps, so the image ID (the sha256 of the
image config, which is what tasks pin) depends only on the busybox binary: every machine with the
same busybox-static package gets the same digest. (`docker import` would stamp the import time into
the config and change the digest on every import.)

Building is idempotent: if an image with the expected ID exists, only the tag is (re)set.

Where busybox comes from, in order: $POSI_BUSYBOX (a path to a static busybox), /bin/busybox if it
is statically linked, `apt-get download busybox-static` (after `apt-get update` if the package
lists are empty), and as a last resort `apt-get install -y busybox-static`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import platform
import shutil
import subprocess
import tarfile
import tempfile

import docker
import docker.errors
import requests.exceptions

from executor.errors import ImageBuildError

BUSYBOX_IMAGE = "posi/busybox:1"
# Applet names come from the binary itself; a sane busybox has a few hundred.
_APPLETS_MAX = 1024
_BUSYBOX_BYTES_MAX = 16 * 1024 * 1024  # the static binary is ~2 MiB
_TMP_PREFIX = "posi-images-"
_FIXED_TIME = "1970-01-01T00:00:00Z"
_APT_TIMEOUT_S = 300


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltImage:
    """One base image on the engine."""

    ref: str  # e.g. "posi/busybox:1"
    image_id: str  # "sha256:..." as the engine reports it: what a JobSpec pins
    created: bool  # False when an identical image was already there


def _is_static_elf(path: pathlib.Path) -> bool:
    """True for an ELF executable without a PT_INTERP program header (no dynamic loader)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only
        return False
    order = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[32:40], order)
    phentsize = int.from_bytes(data[54:56], order)
    phnum = int.from_bytes(data[56:58], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            return False
        if int.from_bytes(data[off : off + 4], order) == 3:  # PT_INTERP
            return False
    return True


def _run(argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=_APT_TIMEOUT_S, check=False
    )


def _busybox_from_deb(workdir: pathlib.Path) -> pathlib.Path | None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    download = _run(["apt-get", "download", "busybox-static"], cwd=str(workdir))
    if download.returncode != 0 and os.geteuid() == 0:
        # Empty or stale package lists on a fresh machine: refresh once and retry.
        _run(["apt-get", "update"])
        download = _run(["apt-get", "download", "busybox-static"], cwd=str(workdir))
    debs = sorted(workdir.glob("busybox-static_*.deb"))
    if download.returncode != 0 or not debs:
        return None
    root = workdir / "deb"
    extract = _run(["dpkg-deb", "-x", str(debs[0]), str(root)])
    candidate = root / "bin" / "busybox"
    if extract.returncode != 0 or not _is_static_elf(candidate):
        return None
    return candidate


def find_busybox(workdir: pathlib.Path) -> pathlib.Path:
    """Locate (or fetch into `workdir`) a statically linked busybox binary.

    Raises ImageBuildError if none can be found or fetched; install `busybox-static` or point
    $POSI_BUSYBOX at a static busybox."""
    override = os.environ.get("POSI_BUSYBOX")
    if override:
        path = pathlib.Path(override)
        if not _is_static_elf(path):
            raise ImageBuildError(f"POSI_BUSYBOX={override} is not a static ELF executable")
        return path
    system = pathlib.Path("/bin/busybox")
    if _is_static_elf(system):
        return system
    from_deb = _busybox_from_deb(workdir)
    if from_deb is not None:
        return from_deb
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _run(["apt-get", "install", "-y", "busybox-static"])
        if _is_static_elf(system):
            return system
    raise ImageBuildError(
        "no static busybox: `apt-get download busybox-static` failed and /bin/busybox is absent "
        "or dynamic; run `apt-get install busybox-static` or set POSI_BUSYBOX=/path/to/busybox"
    )


def _applets(busybox: pathlib.Path) -> list[str]:
    proc = _run([str(busybox), "--list"])
    names = sorted(set(proc.stdout.split()))
    if proc.returncode != 0 or not names or len(names) > _APPLETS_MAX:
        raise ImageBuildError(f"{busybox} --list failed: {proc.stderr.strip()[:200]}")
    for name in names:
        if "/" in name or name in (".", ".."):
            raise ImageBuildError(f"{busybox} lists a strange applet name {name!r}")
    return names


_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def rootfs_tar(busybox: bytes, applets: list[str]) -> bytes:
    """The image's single layer: a deterministic tar (sorted entries, owner 0:0, mtime 0)."""
    buf = io.BytesIO()
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []

    def add(name: str, kind: bytes, mode: int, data: bytes | None = None, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.linkname = link
        info.size = len(data) if data is not None else 0
        entries.append((name, info, data))

    for d in ("bin", "dev", "etc", "proc", "sys"):
        add(d, tarfile.DIRTYPE, 0o755)
    add("tmp", tarfile.DIRTYPE, 0o1777)
    add("bin/busybox", tarfile.REGTYPE, 0o755, busybox)
    for name in applets:
        if name != "busybox":
            add(f"bin/{name}", tarfile.SYMTYPE, 0o777, link="busybox")
    add("etc/passwd", tarfile.REGTYPE, 0o644, _PASSWD)
    add("etc/group", tarfile.REGTYPE, 0o644, _GROUP)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for _, info, data in sorted(entries, key=lambda e: e[0]):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )


def image_archive(ref: str, layer: bytes, labels: dict[str, str]) -> tuple[str, bytes]:
    """A `docker load` archive holding one image; returns (image id, archive bytes)."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _arch(),
        "config": {"Env": ["PATH=/bin"], "Labels": labels, "WorkingDir": "/"},
        "created": _FIXED_TIME,
        "history": [{"created": _FIXED_TIME, "created_by": "posi-peer images build"}],
        "os": "linux",
        "rootfs": {"diff_ids": [diff_id], "type": "layers"},
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    layer_dir = diff_id.removeprefix("sha256:")
    manifest = [
        {"Config": f"{config_hex}.json", "Layers": [f"{layer_dir}/layer.tar"], "RepoTags": [ref]}
    ]
    files = {
        f"{config_hex}.json": config_bytes,
        f"{layer_dir}/layer.tar": layer,
        "manifest.json": json.dumps(manifest, separators=(",", ":")).encode(),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dir_info = tarfile.TarInfo(layer_dir)
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        tar.addfile(dir_info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return "sha256:" + config_hex, buf.getvalue()


def build_busybox_image(client: docker.DockerClient, ref: str = BUSYBOX_IMAGE) -> BuiltImage:
    """Build (or find) the busybox base image and tag it `ref`.

    Raises ImageBuildError if busybox cannot be obtained or the engine refuses the archive."""
    with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX) as tmp:
        busybox_path = find_busybox(pathlib.Path(tmp))
        busybox = busybox_path.read_bytes()
        if len(busybox) > _BUSYBOX_BYTES_MAX:
            raise ImageBuildError(f"{busybox_path} is larger than {_BUSYBOX_BYTES_MAX} bytes")
        layer = rootfs_tar(busybox, _applets(busybox_path))
    labels = {"org.posi-peer.busybox.sha256": hashlib.sha256(busybox).hexdigest()}
    image_id, archive = image_archive(ref, layer, labels)
    try:
        try:
            existing = client.images.get(image_id)
        except docker.errors.ImageNotFound:
            existing = None
        if existing is not None:
            if ref not in existing.tags:
                repo, tag = ref.rsplit(":", 1)
                existing.tag(repo, tag)
            return BuiltImage(ref, image_id, created=False)
        client.api.load_image(archive)
        loaded = client.images.get(ref)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ImageBuildError(f"the engine refused {ref}: {exc}") from None
    if loaded.id != image_id:
        raise ImageBuildError(f"{ref} loaded as {loaded.id}, expected {image_id}")
    return BuiltImage(ref, image_id, created=True)


def build_base_images(client: docker.DockerClient) -> list[BuiltImage]:
    """Build every base image the tests and the simulator need (idempotent).

    Raises ImageBuildError naming the step that failed."""
    return [build_busybox_image(client)]
