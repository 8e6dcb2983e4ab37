"""Packaging shim: the metadata lives in setup.cfg.

The SDL files live in the top-level ``schema/`` folder (the source of truth that
reviewers read) and are shipped inside the installed package as ``authsvc.schema``
through the ``package_dir`` mapping in setup.cfg.
"""

from setuptools import setup

setup()
