"""Data: Human3.6M / MPI-INF-3DHP readers, cameras, windows, input pipelines."""
