"""`python -m closure`: the same CLI as the `closure` command."""
from .cli.app import main

main()
