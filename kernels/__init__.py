"""CUDA embedding-bag kernels: sources, offline compiler driver, CPU runner, CuPy launcher."""
