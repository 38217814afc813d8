"""Developer tools for corosio_py (benchmarks); not shipped with the package."""
