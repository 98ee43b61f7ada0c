"""medreview's domain: formats, rules and the use cases shared by the pages and the CLI."""
