"""Migration commands without an ``alembic.ini``: ``python -m storage COMMAND``.

    python -m storage upgrade                 # migrate COURTSIDE_DATABASE_URL to head
    python -m storage current                 # print the current revision
    python -m storage downgrade REV           # e.g. base
    python -m storage revision -m "add bets"  # autogenerate versions/NNNN_add_bets.py

``--url`` overrides the database (default: ``Settings.from_env().database_url``). New
revisions are numbered sequentially (0002, 0003, ...) and compared against a database
upgraded to head, so point ``--url`` at a scratch database (a fresh SQLite file is fine).
"""

from __future__ import annotations

import argparse

from alembic import command
from alembic.script import ScriptDirectory

from storage.db import alembic_config, current_revision, downgrade, migrate


def _next_revision_id() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(rev.revision) for rev in script.walk_revisions() if rev.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL (default: COURTSIDE_DATABASE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="migrate to head")
    commands.add_parser("current", help="print the current revision")
    down = commands.add_parser("downgrade", help="downgrade to a revision")
    down.add_argument("revision")
    new = commands.add_parser("revision", help="autogenerate a new revision")
    new.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    url = args.url
    if url is None:
        from courtside.settings import Settings

        url = Settings.from_env().database_url
    if args.command == "upgrade":
        migrate(url)
    elif args.command == "current":
        print(current_revision(url) or "(empty database)")
    elif args.command == "downgrade":
        downgrade(url, args.revision)
    else:
        migrate(url)
        command.revision(
            alembic_config(url),
            message=args.message,
            autogenerate=True,
            rev_id=_next_revision_id(),
        )


if __name__ == "__main__":
    main()
