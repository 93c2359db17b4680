from setuptools import setup

setup(cffi_modules=["aiorusty/_build.py:ffibuilder"])
