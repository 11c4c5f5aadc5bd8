"""`posi-peer images build` and `posi-peer exec`: the executor's subcommands.

`images build` makes the base images from local files (no registry) and prints their digests.
`exec` runs one job in the real sandbox on this machine and prints its signed report as JSON (with
a throwaway identity key unless one is given): the way an operator checks that the sandbox works.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the executor's subcommands to the `posi-peer` parser."""
    images = subparsers.add_parser(
        "images",
        help="build the base images jobs run in (no registry needed)",
        description="Manage the local base images tests and the simulator run jobs in.",
    )
    images_sub = images.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    build = images_sub.add_parser(
        "build",
        help="build posi/busybox:1 from Debian's busybox-static (idempotent); print digests",
        description=(
            "Build the base images from local files (docker load of a deterministic archive). "
            "Idempotent: an identical image is only re-tagged. Prints '<ref> <image id>' per "
            "image; a job spec pins the image id."
        ),
    )
    build.set_defaults(func=_images_build)

    run = subparsers.add_parser(
        "exec",
        help="run one job in the hardened sandbox and print the signed report",
        description=(
            "Run ARGV in the sandbox under the default policy and print the attestation report "
            "as JSON, then the captured stdout on stderr. Exit code 0 when the job exited 0."
        ),
    )
    run.add_argument("--image", default="posi/busybox:1", help="image reference or sha256 id")
    run.add_argument("--runtime", choices=["runc", "runsc"], default="runc")
    run.add_argument("--wall-time-ms", type=int, default=10_000)
    run.add_argument("--memory-mib", type=int, default=128)
    run.add_argument("--pids", type=int, default=64)
    run.add_argument("--cpu-millicores", type=int, default=1000)
    run.add_argument("--output-bytes-max", type=int, default=1024 * 1024)
    run.add_argument("--input", default="", help="bytes given on stdin (UTF-8 text)")
    run.add_argument("argv", nargs="+", help="the command to run (use -- before it)")
    run.set_defaults(func=_exec)


def _images_build(args: argparse.Namespace) -> int:
    from executor.engine import docker_client
    from executor.errors import ExecutorError
    from executor.images import build_base_images

    try:
        built = build_base_images(docker_client())
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for image in built:
        state = "built" if image.created else "present"
        print(f"{image.ref} {image.image_id} ({state})")
    return 0


def _exec(args: argparse.Namespace) -> int:
    import trio

    from executor.engine import docker_client
    from executor.errors import ExecutorError, SpecError
    from executor.measure import software_measurement
    from executor.policy import Runtime
    from executor.report import Outcome, to_json
    from executor.run import execute
    from executor.sandbox import DockerSandbox
    from executor.spec import make_spec
    from ledger.domains import Domain, digest
    from ledger.signing import IdentityKey

    try:
        client = docker_client()
        image = client.images.get(args.image)
        spec = make_spec(
            str(image.id),
            args.argv,
            input=args.input.encode(),
            wall_time_ms=args.wall_time_ms,
            memory_bytes=args.memory_mib * 1024 * 1024,
            pids_max=args.pids,
            cpu_millicores=args.cpu_millicores,
            output_bytes_max=args.output_bytes_max,
        )
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - any engine failure is reported the same way
        print(f"error: {exc}", file=sys.stderr)
        return 1
    key = IdentityKey.generate()
    task_id = digest(Domain.TASK_ID, spec.encode())

    async def main() -> int:
        sandbox = await DockerSandbox.connect(runtime=Runtime[args.runtime.upper()])
        try:
            done = await execute(
                task_id,
                spec.encode(),
                sandbox=sandbox,
                key=key,
                software_measurement=software_measurement(),
            )
        finally:
            sandbox.close()
        print(json.dumps(to_json(done.report), indent=2))
        sys.stderr.buffer.write(done.stdout)
        body = done.report.body
        return 0 if body.outcome is Outcome.EXITED and body.exit_code == 0 else 1

    try:
        return trio.run(main)
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
