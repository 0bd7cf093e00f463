"""Packaging beyond setup.cfg: the top-level ``properties/`` folder (RecBole's layout, kept in the
checkout) travels inside wheels as ``recbole_llmaug/properties`` so that a non-editable install finds
its yaml defaults (``recbole_llmaug.defaults.properties_dir``)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["recbole_llmaug", "recbole_llmaug.*"]) + ["recbole_llmaug.properties"],
    package_dir={"recbole_llmaug.properties": "properties"},
    package_data={"recbole_llmaug.properties": ["*.yaml", "*/*.yaml"]},
)
