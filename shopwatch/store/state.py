"""The state store: projects, keys and instance settings, through SQLAlchemy Core.

SQLite (``<data_dir>/state.sqlite``, WAL mode) by default; any SQLAlchemy URL works
(PostgreSQL at scale). Several processes may use it at once: the server reads keys
while ``shopwatch project rotate-key`` writes them.

Migrations are versioned and applied at open, in order, each in its own transaction;
the applied versions are recorded in ``schema_migrations``.

Keys: every project has one public *ingest* key (``swpub_…``, write-only, safe to embed
in a web page) and one *secret* key (``swsec_…``, reads the API). Rotating a key revokes
the old one at once; a running server notices within its key-cache lifetime (2 s).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shopwatch.errors import ConfigError, NotFound

KeyKind = Literal["ingest", "secret"]
KEY_PREFIX: Final[dict[str, str]] = {"ingest": "swpub_", "secret": "swsec_"}

metadata = sa.MetaData()
schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)
projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
instance = sa.Table(
    "instance", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _m1_initial(conn: Connection) -> None:
    for table in (projects, api_keys, instance):
        table.create(conn)
    conn.execute(instance.insert().values(key="pseudonym_key", value=secrets.token_hex(32)))


MIGRATIONS: Final[tuple[tuple[int, str, Callable[[Connection], None]], ...]] = (
    (1, "projects, api keys, instance secrets", _m1_initial),
)


@dataclass(frozen=True)
class Project:
    """A shop: what `project create --json` prints."""

    id: int
    name: str
    ingest_key: str
    secret_key: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyInfo:
    project_id: int
    kind: KeyKind


def new_key(kind: KeyKind) -> str:
    """A fresh random key: prefix plus 32 bytes of urlsafe randomness."""
    return KEY_PREFIX[kind] + secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """Projects and keys; see the module docstring."""

    def __init__(self, url_or_path: str | Path) -> None:
        url = str(url_or_path)
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.engine: Engine = sa.create_engine(url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
        for version, name, apply in MIGRATIONS:
            if version in done:
                continue
            with self.engine.begin() as conn:
                apply(conn)
                conn.execute(schema_migrations.insert().values(
                    version=version, name=name, applied_at=_now()))

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar()
                       or 0)

    def close(self) -> None:
        self.engine.dispose()

    # --- projects --------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """Create a project with fresh keys. Raises ConfigError when the name is taken."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ConfigError("a project name must be 1 to 200 characters")
        now = _now()
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(projects.c.id).where(
                sa.func.lower(projects.c.name) == name.lower())).first()
            if exists:
                raise ConfigError(f"a project named {name!r} exists already (id {exists[0]})")
            inserted = conn.execute(projects.insert().values(name=name, created_at=now))
            pid = inserted.inserted_primary_key
            assert pid is not None
            project_id = int(pid[0])
            keys = {kind: new_key(kind) for kind in ("ingest", "secret")}
            for kind, key in keys.items():
                conn.execute(api_keys.insert().values(
                    key=key, project_id=project_id, kind=kind, created_at=now))
        return Project(project_id, name, keys["ingest"], keys["secret"])

    def list_projects(self) -> list[Project]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(projects.c.id, projects.c.name, api_keys.c.kind, api_keys.c.key)
                .join(api_keys, api_keys.c.project_id == projects.c.id)
                .where(api_keys.c.revoked_at.is_(None))
                .order_by(projects.c.id)
            ).all()
        found: dict[int, dict[str, Any]] = {}
        for pid, name, kind, key in rows:
            found.setdefault(pid, {"id": pid, "name": name})[f"{kind}_key"] = key
        return [Project(**p) for p in found.values()]

    def get_project(self, ref: str | int) -> Project:
        """A project by id or (case-insensitive) name; NotFound says which exist."""
        all_projects = self.list_projects()
        for p in all_projects:
            if str(p.id) == str(ref) or p.name.lower() == str(ref).strip().lower():
                return p
        names = ", ".join(f"{p.id} ({p.name})" for p in all_projects) or "none yet"
        raise NotFound(f"no project {ref!r}; projects: {names}")

    def rotate_key(self, ref: str | int, kind: KeyKind) -> Project:
        """Revoke the project's current key of ``kind`` and issue a new one."""
        project = self.get_project(ref)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(api_keys.update().where(
                (api_keys.c.project_id == project.id) & (api_keys.c.kind == kind)
                & api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
            conn.execute(api_keys.insert().values(
                key=new_key(kind), project_id=project.id, kind=kind, created_at=now))
        return self.get_project(project.id)

    def resolve_key(self, key: str) -> KeyInfo | None:
        """The project and kind of a live key, or None for an unknown or revoked key."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys.c.project_id, api_keys.c.kind).where(
                (api_keys.c.key == key) & api_keys.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        return KeyInfo(int(row[0]), row[1])

    def instance_value(self, key: str) -> str:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(instance.c.value).where(instance.c.key == key)).scalar()
        if value is None:
            raise NotFound(f"instance setting {key!r} missing")
        return str(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI write keys while the server reads them; busy_timeout waits out
    # the other process's short write instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
