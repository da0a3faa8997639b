"""Benchmarks. Each `bench/bench_*.py` has `main() -> None` and prints ratios against a baseline run in the same process."""
