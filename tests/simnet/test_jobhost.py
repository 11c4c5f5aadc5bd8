"""Docker jobs of a real-mode worker, run by a process of their own (simnet/jobhost.py)."""

from __future__ import annotations

import multiprocessing
import random

import pytest
import trio

from executor.errors import ImageMissing
from executor.policy import effective_policy
from executor.report import Outcome
from executor.run import Execution, execute
from ledger.signing import IdentityKey
from simnet import jobhost, jobs
from simnet.realmode import busybox_image_digest
from simnet.scenario import JOB_KINDS

pytestmark = pytest.mark.docker

ABSENT_IMAGE = "sha256:" + "ab" * 32


def test_jobs_run_in_the_jobs_process_and_errors_cross_the_pipe() -> None:
    image = busybox_image_digest()
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=jobhost.serve, args=(theirs,), daemon=True)
    proc.start()
    theirs.close()
    rng = random.Random(5)
    specs = [jobs.make_job(JOB_KINDS["sha256"], i, rng, image) for i in range(3)]
    key = IdentityKey.generate()

    async def main() -> None:
        sandbox = await jobhost.RemoteSandbox.connect(mine)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sandbox.read_answers)
            done: dict[int, Execution] = {}

            async def one(i: int) -> None:
                done[i] = await execute(
                    bytes([i]) * 32,
                    specs[i].encode(),
                    sandbox=sandbox,
                    key=key,
                    software_measurement=b"\0" * 32,
                )

            async with trio.open_nursery() as runs:  # three at once, answered out of order
                for i in range(3):
                    runs.start_soon(one, i)
            for i, spec in enumerate(specs):
                body = done[i].report.body
                assert body.outcome is Outcome.EXITED, body.detail
                assert done[i].stdout == jobs.expected_output(spec)
                assert body.executor_key == key.public  # signed in the worker, by the peer
            # An engine error arrives as the sandbox's own error type, with its fields.
            absent = jobs.make_job(JOB_KINDS["echo"], 9, rng, ABSENT_IMAGE)
            with pytest.raises(ImageMissing) as caught:
                await sandbox.run(absent, effective_policy(absent, sandbox.runtime))
            assert ABSENT_IMAGE in str(caught.value)
            nursery.cancel_scope.cancel()

    trio.run(main)
    mine.close()  # the jobs process ends when its worker's end of the pipe closes
    proc.join(timeout=60)
    assert proc.exitcode == 0
