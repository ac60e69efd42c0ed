"""Install the importance-sampling library."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "importance_sampling" / "__init__.py").read_text()
).group(1)

setup(
    name="keras-importance-sampling",
    version=VERSION,
    description="Train Keras models with importance sampling",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    packages=find_packages(include=["importance_sampling", "importance_sampling.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "numpy",
        "blinker",
    ],
    entry_points={
        "console_scripts": [
            "importance-sampling = importance_sampling.experiment:main",
        ],
    },
    extras_require={
        "benchmarks": ["scikit-learn", "mlxtend"],
        "cpu": ["tensorflow-cpu>=2.16"],
        "examples": ["matplotlib"],
        "test": ["pytest", "matplotlib", "mkdocs", "tensorboard"],
    },
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
