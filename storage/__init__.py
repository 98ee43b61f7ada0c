"""The database behind medreview: tables, the engine factory, repository functions, migrations."""
