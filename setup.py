"""Finds fitplan's packages. The design card keeps solver/, cli/, web/ and catalogs/ at the top of
the repository; they are installed under the one namespace `fitplan` (fitplan.solver, fitplan.cli,
fitplan.web, fitplan.catalogs) so no generic top-level name leaks into users' environments.
Everything else about the package is in pyproject.toml."""

from setuptools import find_packages, setup

FOLDERS = {"solver": "fitplan.solver", "cli": "fitplan.cli", "web": "fitplan.web", "catalogs": "fitplan.catalogs"}

packages = ["fitplan"]
for folder, package in FOLDERS.items():
    packages += [package + name.removeprefix(folder) for name in find_packages(include=[folder, folder + ".*"])]

setup(packages=packages, package_dir={"fitplan": "fitplan", **{package: folder for folder, package in FOLDERS.items()}})
