"""The one compiled module, `lvcrypt.crypto._sectors`: dm-crypt's sector loop over OpenSSL's libcrypto.

Everything else about the package is declared in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lvcrypt.crypto._sectors", ["lvcrypt/crypto/_sectors.c"], libraries=["crypto"],
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"])])
