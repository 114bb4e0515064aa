"""Copies the top-level templates/ and samples/ into the wheel as newsletter/data/.

The repository keeps both folders at the top level, where a reader of the project finds
them and where newsletter.yml points. A wheel has only the package, so the build copies
them in; setuptools' package-dir mappings could ship them too, but would make each folder
an importable package and break the paths an editable install reads in place.
Everything else about the build is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("templates", "samples")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the top-level folders in place
            return
        here = Path(__file__).parent
        target = Path(self.build_lib, "newsletter", "data")
        for name in BUNDLED:
            shutil.copytree(here / name, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
