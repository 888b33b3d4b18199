"""The DDL of each schema version, as templates: ``{s}`` stands for the quoted schema name.

Ids and names are ``COLLATE "C"``: orderings by id then match the reference storage (code-point order) whatever
the database's collation, and comparisons are cheaper.  Times are ``timestamptz``.  There are no foreign keys:
every write already names rows by primary key, and cleanup deletes an execution's rows together.
"""

from __future__ import annotations

_TABLES = (
    # One sequence for every claim's fencing token: tokens are unique across tasks and claims.
    "CREATE SEQUENCE {s}.fencing_tokens AS bigint",
    """CREATE TABLE {s}.executions (
        execution_id text COLLATE "C" PRIMARY KEY,
        root_task_id text COLLATE "C" NOT NULL,
        function text COLLATE "C" NOT NULL,
        queue text COLLATE "C" NOT NULL,
        state text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        deadline timestamptz,
        result text,
        error text,
        finished_at timestamptz,
        counters text NOT NULL DEFAULT '{}',
        custom_state text NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX executions_created ON {s}.executions (created_at, execution_id)",
    "CREATE INDEX executions_state ON {s}.executions (state, created_at, execution_id)",
    # time_out_executions: unfinished executions with a deadline.
    """CREATE INDEX executions_deadline ON {s}.executions (deadline, execution_id)
        WHERE deadline IS NOT NULL AND state IN ('pending', 'running', 'cancelling')""",
    # cleanup: finished executions by age.
    """CREATE INDEX executions_finished ON {s}.executions (finished_at, execution_id)
        WHERE state IN ('completed', 'failed', 'timed_out', 'cancelled')""",
    # ``seq`` orders an execution's tasks by creation (identity values only grow).
    """CREATE TABLE {s}.tasks (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        task_id text COLLATE "C" PRIMARY KEY,
        execution_id text COLLATE "C" NOT NULL,
        function text COLLATE "C" NOT NULL,
        kind text NOT NULL,
        state text NOT NULL,
        queue text COLLATE "C" NOT NULL,
        tags text[] NOT NULL,
        priority bigint NOT NULL,
        args text NOT NULL,
        attempt integer NOT NULL,
        max_attempts integer NOT NULL,
        max_concurrent integer,
        options text NOT NULL,
        scheduled_for timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        parent_task_id text COLLATE "C",
        parent_attempt integer,
        step integer,
        lease_owner text,
        lease_expires_at timestamptz,
        fencing_token bigint NOT NULL DEFAULT 0,
        result text,
        error text,
        started_at timestamptz,
        finished_at timestamptz,
        wake_at timestamptz
    )""",
    # A step's identity; root tasks have NULL parents, which a unique index treats as distinct.
    "CREATE UNIQUE INDEX tasks_step ON {s}.tasks (parent_task_id, parent_attempt, step)",
    "CREATE INDEX tasks_execution ON {s}.tasks (execution_id, seq)",
    # The claim's three kinds of runnable task, each with a partial index holding only its rows: due pending
    # tasks in claim order, suspended tasks by wake time, leased tasks by lease expiry.
    """CREATE INDEX tasks_pending ON {s}.tasks (priority DESC, scheduled_for, created_at, task_id)
        WHERE state = 'pending' AND kind = 'call'""",
    "CREATE INDEX tasks_wake ON {s}.tasks (wake_at) WHERE state = 'suspended' AND wake_at IS NOT NULL",
    "CREATE INDEX tasks_lease ON {s}.tasks (lease_expires_at) WHERE state IN ('running', 'waiting')",
    # max_concurrent counts running tasks of limited functions.
    "CREATE INDEX tasks_limited ON {s}.tasks (function) WHERE state = 'running' AND max_concurrent IS NOT NULL",
    "CREATE INDEX tasks_queue_depth ON {s}.tasks (queue) WHERE state = 'pending' AND kind = 'call'",
    # send_signal finds the oldest pending signal step of a name.
    "CREATE INDEX tasks_signal_wait ON {s}.tasks (execution_id, function, seq) WHERE kind = 'signal' AND state = 'pending'",
    # One row per function that has ever had a max_concurrent: claimers take an advisory lock per such function
    # (in name order) before counting its running tasks, which serializes exactly the claims that could exceed
    # its limit, and only those.
    # ``max_concurrent`` is the greatest limit any of its tasks had: a function with at least that many running
    # tasks cannot start another, which a claim sees without taking the lock (and so idle pollers of a
    # saturated function never queue behind one another).
    """CREATE TABLE {s}.limited_functions (
        function text COLLATE "C" PRIMARY KEY,
        max_concurrent integer NOT NULL
    )""",
    """CREATE TABLE {s}.signals (
        signal_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        execution_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL,
        consumed_by text COLLATE "C"
    )""",
    "CREATE INDEX signals_execution ON {s}.signals (execution_id, signal_id)",
    "CREATE INDEX signals_buffered ON {s}.signals (execution_id, name, signal_id) WHERE consumed_by IS NULL",
    """CREATE TABLE {s}.dead_letters (
        task_id text COLLATE "C" PRIMARY KEY,
        execution_id text COLLATE "C" NOT NULL,
        function text NOT NULL,
        queue text NOT NULL,
        reason text NOT NULL,
        error text NOT NULL,
        attempts integer NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX dead_letters_created ON {s}.dead_letters (created_at, task_id)",
    """CREATE TABLE {s}.cache (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        expires_at timestamptz
    )""",
    """CREATE TABLE {s}.leaders (
        name text COLLATE "C" PRIMARY KEY,
        owner text NOT NULL,
        expires_at timestamptz NOT NULL
    )""",
    """CREATE TABLE {s}.workers (
        worker_id text COLLATE "C" PRIMARY KEY,
        hostname text NOT NULL,
        pid integer NOT NULL,
        queues text[],
        tags text[],
        max_concurrency integer NOT NULL,
        running integer NOT NULL,
        state text NOT NULL,
        started_at timestamptz NOT NULL,
        last_seen timestamptz NOT NULL
    )""",
)

# The claim, as one function so that a whole batch is one round trip and one statement (atomic without an
# explicit transaction).  It is VOLATILE, so each statement inside takes a fresh snapshot: the running counts
# are read only after the limited functions' rows are locked, and so include every claim committed before.
#
# Candidates are locked with SKIP LOCKED (claimers never wait for each other's rows, and never get the same
# task); a window over them applies max_concurrent within the batch exactly as the reference storage's loop
# does.  Tasks of a function already at its limit are left out of the candidates, so a saturated function's
# backlog never stands in front of other work; when a chunk of candidates runs out before the batch is full the
# search runs again, and then sees the tasks just claimed as running.
_CLAIM = r"""CREATE FUNCTION {s}.claim_tasks(
        p_worker text, p_functions text[], p_queues text[], p_tags text[], p_limit integer,
        p_now timestamptz, p_lease_until timestamptz)
    RETURNS SETOF {s}.tasks
    LANGUAGE plpgsql VOLATILE
    -- Its statements' plans are cached per connection (the generic plans plpgsql settles on after five calls
    -- walk the same partial indexes, and were measured faster than planning every call).
    AS $claim$
DECLARE
    v_locked text[];
    v_taken text[] := '{}';
    v_ids text[];
    v_seen integer;
    v_need integer;
    v_chunk integer;
    v_function text;@DECLARE@
BEGIN
    -- Transaction-scoped advisory locks (held in memory, unlike row locks, which write the row), one per
    -- limited function, keyed by schema and name and taken in name order, so two claimers never wait for
    -- each other in a cycle.
    SELECT coalesce(array_agg(l.function ORDER BY l.function), '{}') INTO v_locked
    FROM {s}.limited_functions AS l
    WHERE l.function = ANY(p_functions)
      AND (SELECT count(*) FROM {s}.tasks AS r WHERE r.function = l.function AND r.state = 'running'
           AND r.max_concurrent IS NOT NULL) < l.max_concurrent;
    FOREACH v_function IN ARRAY v_locked LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('stent.claim:' || {schema_literal} || ':' || v_function, 0));
    END LOOP;
    LOOP
        v_need := p_limit - cardinality(v_taken);
        EXIT WHEN v_need <= 0;
        -- Some slack, so a few candidates skipped for max_concurrent rarely cost a second search.  Each kind of
        -- runnable task is searched on its own, in claim order along its own partial index, so a search stops
        -- after a chunk however long the backlog (one search over all three would sort every due task).
        v_chunk := v_need + least(v_need, 32) + 8;
        WITH running AS (
            SELECT function, count(*) AS n FROM {s}.tasks
            WHERE state = 'running' AND max_concurrent IS NOT NULL AND function = ANY(p_functions)
            GROUP BY function
        ), @ARMS@
        ), candidates AS (
            SELECT * FROM pending UNION ALL SELECT * FROM woken UNION ALL SELECT * FROM expired
        ), ranked AS (
            -- k: the function's not-yet-running candidates up to this one, i.e. the slots taken before it
            -- (plus itself, for one that is not running).
            SELECT c.*, count(*) FILTER (WHERE c.state <> 'running') OVER (
                PARTITION BY c.function ORDER BY c.priority DESC, c.ready, c.created_at, c.task_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS k
            FROM candidates AS c
        ), chosen AS (
            SELECT task_id, priority, ready, created_at FROM ranked
            WHERE max_concurrent IS NULL
               OR (state <> 'running' AND n + k <= max_concurrent)
               OR (state = 'running' AND n + least(k, greatest(max_concurrent - n, 0)) <= max_concurrent)
            ORDER BY priority DESC, ready, created_at, task_id
            LIMIT v_need
        )
        SELECT greatest((SELECT count(*) FROM pending), (SELECT count(*) FROM woken),
                        (SELECT count(*) FROM expired)),
               (SELECT array_agg(task_id ORDER BY priority DESC, ready, created_at, task_id) FROM chosen)
        INTO v_seen, v_ids;
        EXIT WHEN v_ids IS NULL;
@UPDATE@        v_taken := v_taken || v_ids;
        EXIT WHEN v_seen < v_chunk;  -- every kind was seen to its end
    END LOOP;
    RETURN QUERY SELECT t.* FROM {s}.tasks AS t
        JOIN unnest(v_taken) WITH ORDINALITY AS o(task_id, ord) ON o.task_id = t.task_id
        ORDER BY o.ord;
END
$claim$"""


def _arm(name: str, due: str, ready: str, started: str) -> str:
    """One kind of runnable task, in claim order, locked (skipping rows other claimers hold) up to a chunk.

    A limited task is a candidate only when its function is locked (a function first seen after the locks were
    taken waits for the next claim) and below its limit.  Reclaiming a running task whose lease expired leaves
    the count as it is, so that needs no lock: the task holds one of the slots already.

    The root task of an execution that is still pending (the one case where the claim writes the execution:
    it starts it) is a candidate only once its execution row is locked, before the task's, skipping it when
    someone holds it (a cancellation, say): the execution row is then always locked before task rows, the lock
    order of every other operation, and a claim never waits for one.
    """
    n = "coalesce((SELECT r.n FROM running AS r WHERE r.function = t.function), 0)"
    return f"""{name} AS (
            SELECT t.task_id, t.function, t.state, t.max_concurrent, t.priority, t.created_at,
                   {ready} AS ready, {n} AS n
            FROM {{s}}.tasks AS t
            WHERE {due} AND t.kind = 'call'
              AND t.function = ANY(p_functions)
              AND (p_queues IS NULL OR t.queue = ANY(p_queues))
              AND (p_tags IS NULL OR cardinality(t.tags) = 0 OR t.tags && p_tags)
              AND (t.max_concurrent IS NULL
                   OR (t.function = ANY(v_locked) AND {n} - (t.state = 'running')::integer < t.max_concurrent)
                   OR (t.state = 'running' AND {n} - 1 < t.max_concurrent))
              AND (t.parent_task_id IS NOT NULL
@STARTED@
                   OR EXISTS (SELECT 1 FROM {{s}}.executions AS e
                              WHERE e.execution_id = t.execution_id AND e.state = 'pending'
                              FOR UPDATE SKIP LOCKED))
              AND t.task_id <> ALL(v_taken)
            ORDER BY t.priority DESC, {ready}, t.created_at, t.task_id
            LIMIT v_chunk
            FOR UPDATE OF t SKIP LOCKED""".replace("@STARTED@", started)


# Whether a root task's execution has started.  Version 1 asked with EXISTS, which PostgreSQL may turn into a
# hash of every started execution, built at each claim (a claim's cost then grew with the executions stored);
# version 2 looks up each candidate's execution by its key.
_STARTED_V1 = """                   OR EXISTS (SELECT 1 FROM {s}.executions AS e
                              WHERE e.execution_id = t.execution_id AND e.state <> 'pending')"""
_STARTED_V2 = """                   OR (SELECT e.state FROM {s}.executions AS e
                              WHERE e.execution_id = t.execution_id) <> 'pending'"""


# Starting the claimed tasks.  Version 1 and 2 found the executions to start with a semi-join that PostgreSQL,
# with statistics of a smaller table (right after a burst of dispatches), ran as a loop over every pending
# execution: 20 ms a claim with 400 executions pending.  Version 3 takes the started roots' execution ids from
# the tasks' own UPDATE and updates those executions by key.
_DECLARE_V1 = ""
_UPDATE_V1 = """        -- Tokens are drawn in claim order (unnest yields the ids in order), as the reference storage does.
        UPDATE {s}.tasks AS t SET state = 'running', lease_owner = p_worker, lease_expires_at = p_lease_until,
            fencing_token = o.token, started_at = coalesce(t.started_at, p_now), wake_at = NULL,
            updated_at = p_now
        FROM (SELECT u.task_id, nextval('{s}.fencing_tokens') AS token
              FROM unnest(v_ids) WITH ORDINALITY AS u(task_id, ord)) AS o
        WHERE t.task_id = o.task_id;
        UPDATE {s}.executions SET state = 'running', updated_at = p_now
        WHERE state = 'pending' AND execution_id IN (
            SELECT execution_id FROM {s}.tasks WHERE task_id = ANY(v_ids) AND parent_task_id IS NULL);
"""
_DECLARE_V3 = """
    v_roots text[];"""
_UPDATE_V3 = """        -- Tokens are drawn in claim order (unnest yields the ids in order), as the reference storage does.
        WITH started AS (
            UPDATE {s}.tasks AS t SET state = 'running', lease_owner = p_worker, lease_expires_at = p_lease_until,
                fencing_token = o.token, started_at = coalesce(t.started_at, p_now), wake_at = NULL,
                updated_at = p_now
            FROM (SELECT u.task_id, nextval('{s}.fencing_tokens') AS token
                  FROM unnest(v_ids) WITH ORDINALITY AS u(task_id, ord)) AS o
            WHERE t.task_id = o.task_id
            RETURNING t.execution_id, t.parent_task_id
        )
        SELECT array_agg(execution_id) FILTER (WHERE parent_task_id IS NULL) INTO v_roots FROM started;
        IF v_roots IS NOT NULL THEN
            UPDATE {s}.executions SET state = 'running', updated_at = p_now
            WHERE execution_id = ANY(v_roots) AND state = 'pending';
        END IF;
"""


def _claim_function(started: str, declare: str = _DECLARE_V1, update: str = _UPDATE_V1) -> str:
    arms = "\n        ), ".join(
        (
            _arm("pending", "t.state = 'pending' AND t.scheduled_for <= p_now", "t.scheduled_for", started),
            _arm("woken", "t.state = 'suspended' AND t.wake_at <= p_now", "t.wake_at", started),
            _arm(
                "expired",
                "t.state IN ('running', 'waiting') AND t.lease_expires_at <= p_now",
                "t.scheduled_for",
                started,
            ),
        )
    )
    return _CLAIM.replace("@ARMS@", arms).replace("@DECLARE@", declare).replace("@UPDATE@", update)


#: Statements of each schema version, in order.
V1 = (*_TABLES, _claim_function(_STARTED_V1))
_GENERIC_PLANS = """    LANGUAGE plpgsql VOLATILE
    -- Its statements' plans are cached per connection (the generic plans plpgsql settles on after five calls
    -- walk the same partial indexes, and were measured faster than planning every call).
"""
# Version 2 keeps the cached generic plans (planning every call costs ~0.8 ms a claim) but prices whole-table
# scans out of them: a generic plan made while the tables were small (right after start-up, before a burst of
# work) chose such a scan and kept it once they had grown, ten times slower at 100,000 pending tasks until the
# next ANALYZE.  Every statement of the claim has an index that serves it.
_INDEXED_PLANS = """    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
"""
V2 = (
    _claim_function(_STARTED_V2)
    .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    .replace(_GENERIC_PLANS, _INDEXED_PLANS, 1),
)
assert "enable_seqscan" in V2[0]
# Version 3 also always uses the generic plans: left to choose, PostgreSQL kept planning some statements at
# every call (0.35 ms of a 1 ms claim).
_ALWAYS_GENERIC_PLANS = """    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan
"""
V3 = (
    _claim_function(_STARTED_V2, _DECLARE_V3, _UPDATE_V3)
    .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    .replace(_GENERIC_PLANS, _ALWAYS_GENERIC_PLANS, 1),
)
assert "v_roots" in V3[0] and "enable_seqscan" in V3[0]
