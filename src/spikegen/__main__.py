"""``python -m spikegen`` runs the command line (used by ``torchrun -m spikegen``)."""

from spikegen.cli import main

main()
