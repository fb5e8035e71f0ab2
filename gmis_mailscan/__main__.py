"""`python -m gmis_mailscan` runs the command line."""

from .cli import main

main()
