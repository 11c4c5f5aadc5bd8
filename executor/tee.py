"""The TEE hook: where a hardware quote enters a report and where a verifier checks it.

There is no TEE hardware on the machines this project is built and tested on, so no real quote is
produced or verified anywhere. What exists is the interface and a test double:

* a `TeeProvider` (on the executor) turns the 32-byte report data of a body into a `TeeQuote`;
* a `TeeVerifier` (on verifiers, passed in through `VerifyPolicy`) checks that a quote is genuine,
  binds that report data and attests an accepted software measurement, raising `TeeError` if not;
* `FakeTee` implements both with a keyed BLAKE3 MAC. It proves nothing about any machine and is
  marked `TeeKind.TEST_DOUBLE` on the wire; it exists so the plumbing (binding, signature coverage,
  verdict reasons) is tested end to end.

A real integration (Intel TDX, AMD SEV-SNP) would implement `TeeProvider` with the platform's quote
call (report data = `tee_report_data(body)`) and `TeeVerifier` with the vendor's certificate chain
and measurement policy.
"""

from __future__ import annotations

import dataclasses
import hmac
from typing import Protocol

import blake3

from executor.errors import TeeError
from executor.report import TeeKind, TeeQuote

FAKE_TEE_KEY_LEN = 32


class TeeProvider(Protocol):
    """Produces a quote over the report data of a body (executor side)."""

    def quote(self, report_data: bytes, software_measurement: bytes) -> TeeQuote:
        """Return a quote binding `report_data` (32 bytes). Raise TeeError if the platform fails;
        the executor then signs the report without a quote."""
        ...


class TeeVerifier(Protocol):
    """Checks a quote (verifier side)."""

    def verify(self, quote: TeeQuote, report_data: bytes, software_measurement: bytes) -> None:
        """Return if the quote is genuine, binds `report_data` and attests `software_measurement`;
        raise TeeError otherwise (the verdict becomes TEE_INVALID)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class FakeTee:
    """TEST DOUBLE: a MAC with a shared key standing in for a hardware quote. Not a TEE."""

    key: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if type(self.key) is not bytes or len(self.key) != FAKE_TEE_KEY_LEN:
            raise ValueError(f"a FakeTee key is {FAKE_TEE_KEY_LEN} bytes")

    def _mac(self, report_data: bytes, software_measurement: bytes) -> bytes:
        return blake3.blake3(report_data + software_measurement, key=self.key).digest()

    def quote(self, report_data: bytes, software_measurement: bytes) -> TeeQuote:
        """A fake quote: report data, measurement and their MAC."""
        mac = self._mac(report_data, software_measurement)
        return TeeQuote(TeeKind.TEST_DOUBLE, report_data + software_measurement + mac)

    def verify(self, quote: TeeQuote, report_data: bytes, software_measurement: bytes) -> None:
        """Raises TeeError unless the quote is this double's MAC over exactly these values."""
        if quote.kind is not TeeKind.TEST_DOUBLE:
            raise TeeError(f"FakeTee cannot verify a {quote.kind.name} quote")
        if len(quote.quote) != 96:
            raise TeeError("FakeTee quote is not 96 bytes")
        data, meas, mac = quote.quote[:32], quote.quote[32:64], quote.quote[64:]
        if not hmac.compare_digest(mac, self._mac(data, meas)):
            raise TeeError("FakeTee quote MAC does not verify")
        if data != report_data:
            raise TeeError("quote does not bind this report body")
        if meas != software_measurement:
            raise TeeError("quote attests another software measurement than the report")
