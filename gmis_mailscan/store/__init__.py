"""Storage: SQLAlchemy tables (models.py) and the only code that reads or writes them (repo.py)."""
