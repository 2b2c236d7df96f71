"""Everything that faces a person or a program: the API, the editor page, the `xinxi` command."""
