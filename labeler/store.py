"""The labels database: SQLite in WAL mode, safe for many annotators and processes at once.

Tables (texts are stored as they are, as SQL text: tabs, newlines, quotes and markup are safe):

- ``tasks``: what was served to an annotator: prompt, the K candidates in the order shown (JSON
  array), generating model and version, sampling params; status ``open`` / ``submitted`` / ``skipped``.
- ``labels``: one rank list each: prompt, annotator, timestamp (ISO-8601, UTC), model, version,
  sampling params, ``origin`` (``app`` or ``import:<file>``), status ``accepted`` / ``undone``.
- ``label_texts``: the candidates of a label, one row a text: its tier (0 = best) and its position
  in the order shown.
- ``rejected``: every refused submission, with its reason, detail and the raw request body.

Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two
writers queue on the busy timeout instead of failing a lock upgrade): a label and its texts land
together or not at all, and a task is submitted once.
"""
from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from rlhf.data.ranklist import RankList, check_tiers

from labeler.validation import Rejection, clean_tiers

SCHEMA_VERSION = 1
#: Sampling parameters stored with every task and label.
SAMPLING_FIELDS = ("seed", "temperature", "top_k", "top_p", "max_new_tokens")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id             TEXT PRIMARY KEY,
    annotator      TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    prompt_source  TEXT NOT NULL,          -- pool | typed | overlap
    candidates     TEXT NOT NULL,          -- JSON array of texts, in the order shown
    candidate_key  TEXT NOT NULL,          -- sha256 of the prompt and the sorted candidates
    model          TEXT NOT NULL,
    model_version  TEXT,
    seed INTEGER, temperature REAL, top_k INTEGER, top_p REAL, max_new_tokens INTEGER,
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'submitted', 'skipped')),
    created_at     TEXT NOT NULL,
    closed_at      TEXT
);
CREATE INDEX IF NOT EXISTS tasks_annotator ON tasks (annotator, status);
CREATE TABLE IF NOT EXISTS labels (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    uid            TEXT NOT NULL UNIQUE,   -- the rank list's id in exports
    task_id        TEXT REFERENCES tasks (id),
    prompt         TEXT NOT NULL,
    candidate_key  TEXT NOT NULL,
    annotator      TEXT,                   -- NULL only for imported lists that name nobody
    created_at     TEXT NOT NULL,
    model          TEXT,
    model_version  TEXT,
    seed INTEGER, temperature REAL, top_k INTEGER, top_p REAL, max_new_tokens INTEGER,
    origin         TEXT NOT NULL,          -- app | import:<file name>
    status         TEXT NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'undone')),
    undone_at      TEXT
);
CREATE INDEX IF NOT EXISTS labels_annotator ON labels (annotator, status, created_at);
CREATE INDEX IF NOT EXISTS labels_created ON labels (created_at, id);
CREATE TABLE IF NOT EXISTS label_texts (
    label_id  INTEGER NOT NULL REFERENCES labels (id),
    position  INTEGER NOT NULL,            -- index in the order shown (file order for imports)
    tier      INTEGER NOT NULL,            -- 0 = best
    text      TEXT NOT NULL,
    PRIMARY KEY (label_id, position)
);
CREATE TABLE IF NOT EXISTS rejected (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    annotator    TEXT,
    task_id      TEXT,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    payload      TEXT
);
"""


def now_iso() -> str:
    """The current time as ISO-8601 in UTC, milliseconds (``2025-01-31T08:15:02.123+00:00``).

    One format for every stored timestamp, so string order is time order.
    """
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def to_utc_iso(value: str) -> str:
    """An ISO-8601 timestamp in the stored format (naive times are taken as UTC); ``ValueError`` if unparsable."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def candidate_key(prompt: str, texts: Sequence[str]) -> str:
    """Identity of a candidate set for a prompt (order-free), to find labels of the same candidates."""
    return hashlib.sha256(json.dumps([prompt, sorted(texts)], ensure_ascii=False).encode()).hexdigest()


@dataclass
class Task:
    """K candidates for a prompt, served to one annotator."""

    id: str
    annotator: str
    prompt: str
    prompt_source: str
    candidates: list[str]
    model: str
    model_version: str | None
    sampling: dict[str, Any]
    status: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """What the browser gets: candidates as ``{"id": index, "text": ...}``."""
        return {"task_id": self.id, "annotator": self.annotator, "prompt": self.prompt,
                "prompt_source": self.prompt_source,
                "candidates": [{"id": i, "text": t} for i, t in enumerate(self.candidates)],
                "model": self.model, "model_version": self.model_version, "sampling": dict(self.sampling),
                "status": self.status, "created_at": self.created_at}


@dataclass
class Label:
    """One stored rank list: texts in tiers, best first (texts of a tier in the order shown)."""

    id: int
    uid: str
    task_id: str | None
    prompt: str
    tiers: list[list[str]]
    annotator: str | None
    created_at: str
    model: str | None
    model_version: str | None
    sampling: dict[str, Any] = field(default_factory=dict)
    origin: str = "app"
    status: str = "accepted"
    undone_at: str | None = None

    def to_ranklist(self) -> RankList:
        """The canonical rank list (DESIGN.md §4), ``source="human"``."""
        return RankList(id=self.uid, prompt=self.prompt, tiers=[list(t) for t in self.tiers], source="human",
                        annotator=self.annotator, created_at=self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "uid": self.uid, "task_id": self.task_id, "prompt": self.prompt,
                "tiers": self.tiers, "annotator": self.annotator, "created_at": self.created_at,
                "model": self.model, "model_version": self.model_version, "sampling": dict(self.sampling),
                "origin": self.origin, "status": self.status, "undone_at": self.undone_at}


def _sampling_of(row: sqlite3.Row) -> dict[str, Any]:
    return {name: row[name] for name in SAMPLING_FIELDS}


def _task_of(row: sqlite3.Row) -> Task:
    return Task(id=row["id"], annotator=row["annotator"], prompt=row["prompt"], prompt_source=row["prompt_source"],
                candidates=json.loads(row["candidates"]), model=row["model"], model_version=row["model_version"],
                sampling=_sampling_of(row), status=row["status"], created_at=row["created_at"])


class LabelStore:
    """The labels database at ``path`` (created with its parent directory when missing).

    ``busy_timeout_s``: how long a writer waits for another's transaction before giving up.
    Each call opens its own connection, so one store may be shared by threads; separate
    processes open their own store on the same file.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
        with self._write() as conn:
            for statement in SCHEMA.split(";"):  # executescript would commit the open transaction
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back on any exception."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- tasks ---------------------------------------------------------------------------------

    def create_task(self, annotator: str, prompt: str, candidates: Sequence[str], *, prompt_source: str,
                    model: str, model_version: str | None, sampling: Mapping[str, Any]) -> Task:
        """Store a task of ``candidates`` (distinct texts, in the order shown) for ``annotator``."""
        if len(set(candidates)) != len(candidates) or len(candidates) < 2:
            raise ValueError(f"a task needs at least two distinct candidates, got {list(candidates)!r}")
        task = Task(id=uuid.uuid4().hex, annotator=annotator, prompt=prompt, prompt_source=prompt_source,
                    candidates=list(candidates), model=model, model_version=model_version,
                    sampling={name: sampling.get(name) for name in SAMPLING_FIELDS}, status="open",
                    created_at=now_iso())
        with self._write() as conn:
            self._insert_task(conn, task)
        return task

    def _insert_task(self, conn: sqlite3.Connection, task: Task) -> None:
        conn.execute(
            "INSERT INTO tasks (id, annotator, prompt, prompt_source, candidates, candidate_key, model, model_version, "
            "seed, temperature, top_k, top_p, max_new_tokens, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (task.id, task.annotator, task.prompt, task.prompt_source,
             json.dumps(task.candidates, ensure_ascii=False), candidate_key(task.prompt, task.candidates),
             task.model, task.model_version, *(task.sampling[name] for name in SAMPLING_FIELDS),
             task.status, task.created_at))

    def task(self, task_id: str) -> Task | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task_of(row)

    def overlap_task(self, annotator: str, rng: random.Random) -> Task | None:
        """A task of candidates another annotator ranked and ``annotator`` has never been served.

        For inter-annotator agreement. Candidate sets ranked by the fewest annotators come first;
        the candidates are shuffled (``rng``) so position does not carry over. ``None`` when there is none.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT t.*, COUNT(DISTINCT l.annotator) AS raters FROM labels l JOIN tasks t ON t.id = l.task_id "
                "WHERE l.status = 'accepted' AND l.annotator != ? "
                "AND l.candidate_key NOT IN (SELECT candidate_key FROM tasks WHERE annotator = ?) "
                "GROUP BY l.candidate_key ORDER BY raters, MIN(l.id) LIMIT 1", (annotator, annotator)).fetchone()
            if row is None:
                return None
            template = _task_of(row)
            candidates = list(template.candidates)
            rng.shuffle(candidates)
            task = Task(id=uuid.uuid4().hex, annotator=annotator, prompt=template.prompt, prompt_source="overlap",
                        candidates=candidates, model=template.model, model_version=template.model_version,
                        sampling=template.sampling, status="open", created_at=now_iso())
            self._insert_task(conn, task)
        return task

    def _open_task(self, conn: sqlite3.Connection, task_id: Any, annotator: str) -> Task:
        row = conn.execute("SELECT * FROM tasks WHERE id = ?", (str(task_id),)).fetchone()
        if row is None:
            raise Rejection("unknown_task", f"no task {str(task_id)[:64]!r}; ask for a new prompt")
        task = _task_of(row)
        if task.annotator != annotator:
            raise Rejection("task_not_yours", f"task {task.id} was served to another annotator, not to {annotator!r}")
        if task.status != "open":
            raise Rejection("task_closed", f"task {task.id} is already {task.status}")
        return task

    def submit(self, task_id: Any, annotator: str, tiers: Any) -> Label:
        """Store ``annotator``'s ranking of an open task: ``tiers`` of candidate indices, best first.

        Raises :class:`~labeler.validation.Rejection` (unknown task, another annotator's task, a
        closed task, or tiers that fail :func:`~labeler.validation.clean_tiers`).
        """
        with self._write() as conn:
            task = self._open_task(conn, task_id, annotator)
            indices = clean_tiers(tiers, task.candidates)
            placed = {index: tier for tier, members in enumerate(indices) for index in members}
            label_tiers = [[task.candidates[i] for i in sorted(members)] for members in indices]
            label = self._insert_label(conn, prompt=task.prompt, placed=[(i, placed[i], text) for i, text in
                                                                         enumerate(task.candidates)],
                                       tiers=label_tiers, annotator=annotator, created_at=now_iso(), origin="app",
                                       uid=None, task_id=task.id, model=task.model, model_version=task.model_version,
                                       sampling=task.sampling)
            conn.execute("UPDATE tasks SET status = 'submitted', closed_at = ? WHERE id = ?", (label.created_at, task.id))
        return label

    def skip(self, task_id: Any, annotator: str) -> Task:
        """Close an open task of ``annotator`` without a label (status ``skipped``)."""
        with self._write() as conn:
            task = self._open_task(conn, task_id, annotator)
            conn.execute("UPDATE tasks SET status = 'skipped', closed_at = ? WHERE id = ?", (now_iso(), task.id))
        task.status = "skipped"
        return task

    def undo_last(self, annotator: str) -> tuple[Label, Task | None]:
        """Mark ``annotator``'s newest accepted label ``undone`` and reopen its task to rank again.

        Repeated calls walk further back. Returns the label and the reopened task (``None`` for
        an imported label). Raises ``Rejection("nothing_to_undo")`` when there is none.
        """
        with self._write() as conn:
            row = conn.execute("SELECT id FROM labels WHERE annotator = ? AND status = 'accepted' AND origin = 'app' "
                               "ORDER BY id DESC LIMIT 1", (annotator,)).fetchone()
            if row is None:
                raise Rejection("nothing_to_undo", f"{annotator!r} has no accepted label to undo")
            conn.execute("UPDATE labels SET status = 'undone', undone_at = ? WHERE id = ?", (now_iso(), row["id"]))
            label = self._labels(conn, "WHERE l.id = ?", (row["id"],))[0]
            task = None
            if label.task_id is not None:
                conn.execute("UPDATE tasks SET status = 'open', closed_at = NULL WHERE id = ?", (label.task_id,))
                task = _task_of(conn.execute("SELECT * FROM tasks WHERE id = ?", (label.task_id,)).fetchone())
        return label, task

    # -- labels --------------------------------------------------------------------------------

    def add_ranklists(self, lists: Iterable[RankList], *, origin: str) -> dict[str, int]:
        """Store rank lists that did not come from a task (an import), in one transaction.

        A list's ``id`` becomes the label's uid and ``created_at`` (stored format, or ``None``: now)
        its timestamp. A list whose id is stored already is not stored again: counted as
        ``already_imported`` with the same prompt and tiers, else ``duplicate_id``. Tiers must pass
        :func:`rlhf.data.ranklist.check_tiers` (raises ``InvalidRecord``, nothing stored).
        Returns ``{"imported", "already_imported", "duplicate_id"}``.
        """
        counts = {"imported": 0, "already_imported": 0, "duplicate_id": 0}
        with self._write() as conn:
            for rank_list in lists:
                tiers = [list(t) for t in rank_list.tiers]
                check_tiers(tiers)
                stored = self._labels(conn, "WHERE l.uid = ?", [rank_list.id])
                if stored:
                    same = stored[0].prompt == rank_list.prompt and \
                        [sorted(t) for t in stored[0].tiers] == [sorted(t) for t in tiers]
                    counts["already_imported" if same else "duplicate_id"] += 1
                    continue
                placed = [(position, tier, text) for position, (tier, text) in
                          enumerate((tier, text) for tier, members in enumerate(tiers) for text in members)]
                self._insert_label(conn, prompt=rank_list.prompt, placed=placed, tiers=tiers,
                                   annotator=rank_list.annotator, created_at=rank_list.created_at or now_iso(),
                                   origin=origin, uid=rank_list.id, task_id=None, model=None, model_version=None,
                                   sampling={})
                counts["imported"] += 1
        return counts

    def _insert_label(self, conn: sqlite3.Connection, *, prompt: str, placed: list[tuple[int, int, str]],
                      tiers: list[list[str]], annotator: str | None, created_at: str, origin: str, uid: str | None,
                      task_id: str | None, model: str | None, model_version: str | None,
                      sampling: Mapping[str, Any]) -> Label:
        uid = uid or f"human-{uuid.uuid4().hex[:16]}"
        values = [sampling.get(name) for name in SAMPLING_FIELDS]
        cur = conn.execute(
            "INSERT INTO labels (uid, task_id, prompt, candidate_key, annotator, created_at, model, model_version, "
            "seed, temperature, top_k, top_p, max_new_tokens, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, task_id, prompt, candidate_key(prompt, [text for _, _, text in placed]), annotator, created_at,
             model, model_version, *values, origin))
        conn.executemany("INSERT INTO label_texts (label_id, position, tier, text) VALUES (?, ?, ?, ?)",
                         [(cur.lastrowid, position, tier, text) for position, tier, text in placed])
        return Label(id=cur.lastrowid, uid=uid, task_id=task_id, prompt=prompt, tiers=tiers, annotator=annotator,
                     created_at=created_at, model=model, model_version=model_version,
                     sampling=dict(zip(SAMPLING_FIELDS, values)), origin=origin)

    def _labels(self, conn: sqlite3.Connection, where: str, params: Sequence[Any], order: str = "ASC",
                limit: int | None = None) -> list[Label]:
        sql = f"SELECT l.* FROM labels l {where} ORDER BY l.created_at {order}, l.id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = conn.execute(sql, tuple(params)).fetchall()
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        tiers: dict[int, list[list[str]]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            chunk = ids[start:start + 500]
            for t in conn.execute(f"SELECT label_id, tier, text FROM label_texts WHERE label_id IN "
                                  f"({','.join('?' * len(chunk))}) ORDER BY label_id, tier, position", chunk):
                label_tiers = tiers[t["label_id"]]
                while len(label_tiers) <= t["tier"]:
                    label_tiers.append([])
                label_tiers[t["tier"]].append(t["text"])
        return [Label(id=row["id"], uid=row["uid"], task_id=row["task_id"], prompt=row["prompt"],
                      tiers=tiers[row["id"]], annotator=row["annotator"], created_at=row["created_at"],
                      model=row["model"], model_version=row["model_version"], sampling=_sampling_of(row),
                      origin=row["origin"], status=row["status"], undone_at=row["undone_at"]) for row in rows]

    def labels(self, status: str | None = "accepted", *, newest_first: bool = False,
               limit: int | None = None) -> list[Label]:
        """Stored labels with ``status`` (``None``: all), oldest first (``created_at``, then id)."""
        where, params = ("WHERE l.status = ?", [status]) if status is not None else ("", [])
        with self._connect() as conn:
            return self._labels(conn, where, params, "DESC" if newest_first else "ASC", limit)

    def prompt_counts(self) -> dict[str, int]:
        """Accepted labels per prompt."""
        with self._connect() as conn:
            return {row[0]: row[1] for row in conn.execute(
                "SELECT prompt, COUNT(*) FROM labels WHERE status = 'accepted' GROUP BY prompt")}

    # -- rejections, progress, counts ----------------------------------------------------------

    def reject(self, reason: str, detail: str, *, endpoint: str, annotator: str | None = None,
               task_id: str | None = None, payload: str | None = None) -> None:
        """Record a refused request (``payload``: the raw body, cut to 10,000 characters)."""
        with self._write() as conn:
            conn.execute("INSERT INTO rejected (received_at, endpoint, annotator, task_id, reason, detail, payload) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (now_iso(), endpoint, annotator, None if task_id is None else str(task_id)[:64], reason,
                          detail, None if payload is None else payload[:10_000]))

    def rejections(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Refused requests, newest first."""
        sql = "SELECT * FROM rejected ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        with self._connect() as conn:
            return [dict(row) for row in conn.execute(sql)]

    def progress(self, since: str) -> dict[str, dict[str, int]]:
        """Per annotator since ``since`` (a stored-format timestamp): ``{"labels": n, "skipped": m}``.

        ``labels`` counts accepted labels made in the app, ``skipped`` skipped tasks.
        """
        out: dict[str, dict[str, int]] = {}
        with self._connect() as conn:
            for row in conn.execute("SELECT annotator, COUNT(*) FROM labels WHERE status = 'accepted' AND origin = 'app' "
                                    "AND created_at >= ? GROUP BY annotator", (since,)):
                out.setdefault(row[0], {"labels": 0, "skipped": 0})["labels"] = row[1]
            for row in conn.execute("SELECT annotator, COUNT(*) FROM tasks WHERE status = 'skipped' AND closed_at >= ? "
                                    "GROUP BY annotator", (since,)):
                out.setdefault(row[0], {"labels": 0, "skipped": 0})["skipped"] = row[1]
        return dict(sorted(out.items()))

    def counts(self) -> dict[str, Any]:
        """Totals: labels by status and origin, tasks by status, annotators, rejections by reason."""
        with self._connect() as conn:
            labels = {f"{row[0]}": row[1] for row in conn.execute("SELECT status, COUNT(*) FROM labels GROUP BY status")}
            origins = {row[0]: row[1] for row in conn.execute(
                "SELECT CASE WHEN origin = 'app' THEN 'app' ELSE 'import' END, COUNT(*) FROM labels "
                "WHERE status = 'accepted' GROUP BY 1")}
            tasks = {row[0]: row[1] for row in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")}
            annotators = conn.execute("SELECT COUNT(DISTINCT annotator) FROM labels WHERE status = 'accepted' "
                                      "AND annotator IS NOT NULL").fetchone()[0]
            rejected = {row[0]: row[1] for row in conn.execute(
                "SELECT reason, COUNT(*) FROM rejected GROUP BY reason ORDER BY reason")}
        return {"labels": {"accepted": labels.get("accepted", 0), "undone": labels.get("undone", 0)},
                "accepted_by_origin": {"app": origins.get("app", 0), "import": origins.get("import", 0)},
                "tasks": {s: tasks.get(s, 0) for s in ("open", "submitted", "skipped")},
                "annotators": annotators, "rejected": rejected}
