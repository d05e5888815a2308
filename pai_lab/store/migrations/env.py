from alembic import context

from pai_lab.store import Base, _import_all_tables

_import_all_tables()
config = context.config
engine = config.attributes.get("engine")

if engine is None:  # `alembic` run from the command line
    from pai_lab.store import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url in alembic.ini (or pass -x) to the database to migrate")
    engine = make_engine(url)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite needs table copies for ALTER
    )
    with context.begin_transaction():
        context.run_migrations()
