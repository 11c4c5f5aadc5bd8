"""Typed errors of the vrf package (stdlib only, shared by both backends)."""

from __future__ import annotations


class VRFError(Exception):
    """Root of every error the vrf package raises."""


class InvalidProof(VRFError):
    """A proof failed to decode or to verify. The caller must treat the claimed output as absent
    and, if the proof came from a peer, penalise that peer."""


class InvalidKey(VRFError):
    """A public key is malformed, not on the curve, non-canonical or of small order (RFC 9381
    section 5.4.5), or a secret key has the wrong length. Reject the key; never retry with it."""


class UnsupportedSuite(VRFError):
    """The suite byte is not one this package implements (0x03 TAI, 0x04 ELL2)."""


class BackendUnavailable(VRFError):
    """POSI_VRF_BACKEND asked for a backend that is not built or not known. Rebuild the package
    with a C compiler (`pip install .`) or choose POSI_VRF_BACKEND=python."""
