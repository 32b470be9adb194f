"""alignkit plugin: hdpo. Registered through the `alignkit` entry-point group; algorithms land here."""
