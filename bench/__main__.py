"""``python -m bench``: run the benchmark cases and write ``bench/results/``."""

from bench.run import main

main()
