"""Build of the optional C extension ``spikegen._native`` (everything else is in pyproject.toml).

The extension holds fused CPU loops for the spike kernels. It is optional: when no C compiler
is at hand the build skips it and spikegen uses its numpy kernels, which give the same bits.
The flags keep the float arithmetic exactly that of numpy: no fast-math, and no contraction of
``a * b + c`` into one fused multiply-add (clang and some gcc targets contract by default).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "src/spikegen/_native.c"
HERE = Path(__file__).resolve().parent
# The first 60 bits of the source's SHA-256, compiled in: spikegen/spikes/native.py ignores a
# build whose source differs from the file next to it (a failed rebuild of an edited file).
SOURCE_HASH = int(hashlib.sha256((HERE / SOURCE).read_bytes()).hexdigest()[:15], 16)

FLAGS = {
    "unix": ["-O3", "-ffp-contract=off", "-fno-trapping-math"],
    "mingw32": ["-O3", "-ffp-contract=off", "-fno-trapping-math"],
    "msvc": ["/O2", "/fp:precise"],
}


class BuildExt(build_ext):
    def run(self):
        # an earlier in-place build must not survive a failed build of a changed source
        for old in (HERE / "src" / "spikegen").glob("_native.*"):
            if old.suffix in (".so", ".pyd"):
                old.unlink()
        super().run()

    def build_extensions(self):
        flags = FLAGS.get(self.compiler.compiler_type, [])
        for ext in self.extensions:
            ext.extra_compile_args = flags
        super().build_extensions()


setup(
    ext_modules=[
        Extension("spikegen._native", [SOURCE], optional=True,
                  define_macros=[("SOURCE_HASH", f"0x{SOURCE_HASH:x}ULL")])
    ],
    cmdclass={"build_ext": BuildExt},
)
