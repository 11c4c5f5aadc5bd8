"""Typed errors of the executor package.

`ExecutorError` is the root. Errors that describe a job (a bad spec, an absent image) never escape
`executor.run.execute`: they become the outcome of a signed report, because the committee must be
told what happened. The errors below escape only from the lower layers (the sandbox, the image
builder, the software measurement) or on local misuse.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Root of every error the executor package raises."""


class SpecError(ExecutorError, ValueError):
    """A job spec breaks one of its bounds or invariants (the message names the field, the value
    and the bound). A spec that came from a task on the ledger is the poster's fault: report the
    outcome SPEC_INVALID; a spec built locally is a bug in the caller."""


class ImageError(ExecutorError):
    """The task's image cannot be used on this node. Never pull: the operator must load the image
    (`posi-peer images build` for the base images) or decline the task."""

    def __init__(self, message: str, *, image_digest: str | None = None) -> None:
        super().__init__(message)
        self.image_digest = image_digest


class ImageMissing(ImageError):
    """No image with the task's digest is present on the engine."""


class ImageMismatch(ImageError):
    """The task's image reference resolves to a different digest than the task pins."""


class ImageRejected(ImageError):
    """The image is present but breaks the sandbox policy (for example it declares VOLUMEs, which
    would give the job writable storage outside the read-only root filesystem)."""


class PolicyRefused(ExecutorError):
    """The spec asks for something this node's sandbox refuses (network access when the node did
    not opt in). Report POLICY_REFUSED; the poster must change the spec or pick other nodes."""


class SandboxError(ExecutorError):
    """The engine failed while running a job (it is not answering, an API call failed, or the
    container did not match the policy after creation). The job's outcome is unknown: report
    SANDBOX_ERROR, and the operator should check `docker info`."""


class EngineUnavailable(SandboxError):
    """No Docker Engine answers. Start the daemon (or set DOCKER_HOST) and retry."""


class RuntimeUnavailable(SandboxError):
    """The requested OCI runtime (e.g. `runsc`) is not registered with the engine. Register it in
    /etc/docker/daemon.json under "runtimes" and reload the daemon, or use the default `runc`."""


class ImageBuildError(ExecutorError):
    """A base image could not be built (busybox-static could not be found or fetched, or the engine
    refused the archive). The message says which step failed and how to fix it."""


class MeasurementError(ExecutorError):
    """The node's installed software could not be measured (a package directory is missing or
    unreadable). Reinstall posi-peer; a node that cannot measure itself must not sign reports."""


class TeeError(ExecutorError):
    """A TEE quote does not verify (wrong format, bad signature chain, or it does not bind the
    report). The verdict is TEE_INVALID."""
