"""`python -m nmfsep`: the nmfsep command, for an environment without the console script on PATH."""

from .cli import main

main()
