"""`python -m cdc_verify.cli`, as the tests and benchmarks start the command line."""

from cdc_verify.cli import main

main()
