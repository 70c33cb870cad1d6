"""What the service classified and the category each seller then chose: SQLAlchemy (SQLite or PostgreSQL), core."""
