"""Build hook only (metadata lives in pyproject.toml): wheels carry the repository's top-level
configs/ and notebooks/ as package data under koemo/_data/, so an install without a checkout
(a wheel, `pip install git+URL`) finds its configs and `koemo reproduce` its notebooks. The
top-level folders stay the one source of truth; nothing is copied into src/."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGED = {"configs": ("*.yaml", "folds/*.csv"), "notebooks": ("*.ipynb",)}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):   # an editable install reads the checkout
            return
        for folder, patterns in PACKAGED.items():
            for pattern in patterns:
                for source in sorted((HERE / folder).glob(pattern)):
                    target = Path(self.build_lib, "koemo", "_data", folder,
                                  source.relative_to(HERE / folder))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildPyWithData})
