"""Building the lab image locally: debootstrap minbase, podman import, podman build --network host.

Built from the host's own Debian release and mirror, so no registry is involved, and never on podman's
default network (which would add a bridge, iptables chains and turn ip_forward on).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from depmirror_lab.paths import LabPaths
from depmirror_lab.shape import BASE_IMAGE, IMAGE
from depmirror_lab.system import LabError, podman_env, require_binaries, run

DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT_S = 600.0
# The image records which lab/image/ it was built from, so an edited Containerfile rebuilds it.
CONTEXT_LABEL = "depmirror_lab.context"


def image_exists(paths: LabPaths, image: str = IMAGE) -> bool:
    result = run(["podman", "image", "exists", image], env=podman_env(paths.containers_conf), check=False)
    return result.returncode == 0


def context_digest(paths: LabPaths) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in paths.image_context.rglob("*") if p.is_file()):
        digest.update(file.relative_to(paths.image_context).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_is_current(paths: LabPaths) -> bool:
    """The image exists and was built from lab/image/ as it is now."""
    result = run(
        ["podman", "image", "inspect", "--format", f'{{{{ index .Labels "{CONTEXT_LABEL}" }}}}', IMAGE],
        env=podman_env(paths.containers_conf),
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == context_digest(paths)


def debian_suite(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise LabError(f"{os_release} has no VERSION_CODENAME: the lab image is built from Debian's release")


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The archive the controller itself uses, so the build goes where apt already goes."""
    deb822 = sources_dir / "sources.list.d" / "debian.sources"
    if deb822.is_file():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = sources_dir / "sources.list"
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return DEFAULT_MIRROR


def build_image(paths: LabPaths, *, force: bool = False) -> bool:
    """Build the image unless it is current; force also redoes the base. True when it was built."""
    if image_is_current(paths) and not force:
        return False
    require_binaries(["podman", "debootstrap", "tar"])
    env = podman_env(paths.containers_conf)
    if force or not image_exists(paths, BASE_IMAGE):
        _import_base(paths, env)
    replaced = _image_id(paths)
    run(
        [
            "podman",
            "build",
            "--network",
            "host",
            "--pull=never",
            "--label",
            f"{CONTEXT_LABEL}={context_digest(paths)}",
            "-t",
            IMAGE,
            "-f",
            str(paths.image_context / "Containerfile"),
            str(paths.image_context),
        ],
        env=env,
        timeout=BUILD_TIMEOUT_S,
    )
    if replaced and replaced != _image_id(paths):
        # The old image is now untagged; remove it unless a container still runs it.
        run(["podman", "rmi", replaced], env=env, check=False)
    return True


def _image_id(paths: LabPaths) -> str | None:
    result = run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        env=podman_env(paths.containers_conf),
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _import_base(paths: LabPaths, env: dict[str, str]) -> None:
    rootfs = paths.rootfs
    # A debootstrap interrupted earlier leaves a tree it refuses to continue from.
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(
            ["debootstrap", "--variant=minbase", debian_suite(), str(rootfs), debian_mirror()],
            timeout=BUILD_TIMEOUT_S,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                ["podman", "import", "-", BASE_IMAGE],
                stdin=tar.stdout,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait(timeout=BUILD_TIMEOUT_S)
        if imported.returncode != 0 or tar.returncode != 0:
            raise LabError(f"podman import of {rootfs} failed: {imported.stderr.strip()}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def remove_images(paths: LabPaths) -> list[str]:
    """Remove the lab image and its base; the names actually removed."""
    env = podman_env(paths.containers_conf)
    removed = []
    for image in (IMAGE, BASE_IMAGE):
        if image_exists(paths, image):
            run(["podman", "rmi", image], env=env)
            removed.append(image)
    return removed
