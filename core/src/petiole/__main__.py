"""``python -m petiole`` is the ``petiole`` command."""

from petiole.cli.early import main

if __name__ == "__main__":
    main()
