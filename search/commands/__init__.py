"""One module per ``leuksearch`` subcommand, each with ``main(args) -> int``."""
