"""plait: functional layer combinators for deep learning on JAX."""
import setuptools

setuptools.setup(
    name="plait",
    version="0.1.0",
    description="Trax-style functional layer combinators on JAX: Reformer, Performer, BigBird.",
    packages=setuptools.find_packages(include=["plait", "plait.*"]),
    package_data={"plait": ["rl_free_configs/*.gin", "data/*.txt.xz"]},
    python_requires=">=3.12",
    install_requires=[
        "jax==0.11.2",
        "jaxlib==0.11.2",
        "numpy>=2.0",
        "gin-config==0.5.0",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "tensorflow-datasets==4.9.10",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "array_record>=0.8",
        "sentencepiece==0.2.3",
        "matplotlib>=3.8",
        "scikit-image==0.26.0",  # photos for the offline ImageNet64 stand-in
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
        "gpu": ["jax[cuda12]==0.11.2"],
    },
    entry_points={
        "console_scripts": [
            "plait-train=plait.supervised.trainer:main",
            "plait-decode=plait.supervised.decode_cli:main",
            "plait-plot=plait.supervised.plot:main",
        ],
    },
)
