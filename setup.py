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
            sources=["vrf/_c/ecvrf_module.c"],
            include_dirs=["vrf/_c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"],
            optional=True,
        )
    ]
)
