"""Storage: SQLAlchemy 2 async models, migrations and repositories (SQLite or Postgres)."""
