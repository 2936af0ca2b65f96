"""The two compiled modules: `lvcrypt.crypto._sectors` (dm-crypt's sector loop over OpenSSL's libcrypto) and
`lvcrypt.metadata._plain_layout` (the metadata parser's fast path for lvm2's plain layout).

Everything else about the package is declared in pyproject.toml.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(ext_modules=[Extension("lvcrypt.crypto._sectors", ["lvcrypt/crypto/_sectors.c"], libraries=["crypto"],
                             extra_compile_args=FLAGS),
                   Extension("lvcrypt.metadata._plain_layout", ["metadata/_plain_layout.c"], extra_compile_args=FLAGS)])
