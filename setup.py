"""Packaging for sb3_generative."""

import os

from setuptools import find_packages, setup

with open(os.path.join("sb3_generative", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

with open("README.md", encoding="utf-8") as file_handler:
    long_description = file_handler.read()

setup(
    name="sb3_generative",
    packages=[package for package in find_packages() if package.startswith("sb3_generative")],
    package_data={
        "sb3_generative": ["py.typed", "version.txt", "zoo_configs/*.yml", "zoo_configs/cpu/*.yml"],
        "sb3_generative.data": ["behaviour_policies/*.npz", "behaviour_policies/sources.json"],
    },
    entry_points={
        "console_scripts": ["sb3-generative-zoo=sb3_generative.zoo:main", "sb3-generative-data=sb3_generative.data.cli:main"]
    },
    install_requires=[
        "stable-baselines3>=2.7,<3.0",
        "torch>=2.3",
        "torchdiffeq>=0.2.4",
        "gymnasium[mujoco]>=1.1",
        "minari[hdf5]>=0.5.2,<0.6",
        # d3rlpy: only its model builders and Q-function forwarders are used (IQLCritic), the same in 2.6 to 2.8.0
        # (tests/test_iql.py checks the losses against d3rlpy's own IQL). 2.8.1 pins gymnasium==1.0.0, which conflicts
        # with gymnasium>=1.1 here; CI runs 2.8.0.
        "d3rlpy>=2.6,<2.9,!=2.8.1",
        "h5py>=3.8",
        "pyyaml>=6.0",
        "numpy>=1.24",
        "tqdm",
        "rich",
    ],
    extras_require={
        "tests": [
            "pytest>=7.0",
            "pytest-xdist",
            "hypothesis>=6.0",
            "tensorboard>=2.9.1",
            "ruff",
            "mypy",
            "rl_zoo3>=2.7",
            "optuna>=3.0",
            "requests",
            "pandas",
            "matplotlib",
            "seaborn",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "rliable>=1.2",
            "pandas<3",  # rliable 1.2 pins arch<8, whose import fails with pandas 3
            "ray>=2.9",
            "gymnasium-robotics>=1.4",
            "sphinx>=7",
            "sphinx-rtd-theme>=2",
            "myst-parser>=3",
        ],
        "zoo": ["rl_zoo3>=2.7", "optuna>=3.0", "requests", "pandas"],
        # export.py: ONNX programs run by onnxruntime
        "export": ["onnx>=1.16", "onnxruntime>=1.18"],
        # benchmarks/scores.py's statistics: IQM with stratified-bootstrap intervals, performance profiles
        "stats": ["rliable>=1.2", "pandas<3", "matplotlib"],
        # benchmarks/scores.py --ray / --ray-address: each run a Ray task, locally or on a cluster
        "cluster": ["ray>=2.9"],
        # sb3-generative-data pointmaze: Gymnasium-Robotics' PointMaze (installs beside gymnasium 1.4 and mujoco 4)
        "maze": ["gymnasium-robotics>=1.4"],
        # the documentation site (docs/): python -m sphinx -W -b html docs docs/_build
        "docs": ["sphinx>=7", "sphinx-rtd-theme>=2", "myst-parser>=3"],
        # RL Zoo's plot scripts (rl_zoo3.plots.*) import seaborn and pandas
        "plots": ["matplotlib", "seaborn", "pandas"],
    },
    description="Generative (diffusion and flow-matching) policies for offline RL with Stable-Baselines3: GMPO and GMPG",
    long_description=long_description,
    long_description_content_type="text/markdown",
    version=__version__,
    python_requires=">=3.10",
    license="MIT",
)
