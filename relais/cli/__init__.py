"""The ``relais`` command line (``main``), one module per command group; ``support`` holds
what every command shares (failing, migrating first, keys, the database)."""
