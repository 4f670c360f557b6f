"""`python -m bench`: the `bench` command, also as torchrun's module entry point."""

from bench.cli import main

main()
