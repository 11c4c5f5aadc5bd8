"""Build hook for the vrf C extension (everything else lives in pyproject.toml).

The extension is optional at build time: if no C compiler is present the package still installs and
`vrf` runs on its pure-Python reference (POSI_VRF_BACKEND=auto says so once in the log;
POSI_VRF_BACKEND=c then fails loudly).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vrf._ecvrf_c",
            sources=[
                "vrf/_c/ecvrf_module.c",
                "vrf/_c/ecvrf.c",
                "vrf/_c/ge25519.c",
                "vrf/_c/fe25519.c",
                "vrf/_c/sc25519.c",
                "vrf/_c/sha512.c",
            ],
            # Headers hold the inline field arithmetic: listing them rebuilds on change and ships
            # them in the sdist.
            depends=[
                "vrf/_c/ecvrf.h",
                "vrf/_c/fe25519.h",
                "vrf/_c/ge25519.h",
                "vrf/_c/sc25519.h",
                "vrf/_c/sha512.h",
            ],
            include_dirs=["vrf/_c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"],
            optional=True,
        )
    ]
)
